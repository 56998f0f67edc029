package ansible_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/ansible"
)

var testSpec = ansible.Spec{
	Params: map[string]ansible.Param{
		"name":           {Type: ansible.TypeStr},
		"enabled":        {Type: ansible.TypeBool, Default: false},
		"count":          {Type: ansible.TypeInt, Default: int64(1)},
		"ratio":          {Type: ansible.TypeFloat},
		"dir":            {Type: ansible.TypePath},
		"items":          {Type: ansible.TypeList, Elements: ansible.TypeStr},
		"opts":           {Type: ansible.TypeDict},
		"anything":       {Type: ansible.TypeRaw},
		"mode":           {Type: ansible.TypeStr, Choices: []string{"auto", "manual"}, Default: "auto"},
		"login_password": {Type: ansible.TypeStr, NoLog: true, Aliases: []string{"password"}},
		"layout":         {Type: ansible.TypeDict},
		"layout_file":    {Type: ansible.TypePath},
		"must":           {Type: ansible.TypeStr, Required: true},
	},
	MutuallyExclusive: [][]string{{"layout", "layout_file"}},
	RequiredOneOf:     [][]string{{"layout", "layout_file"}},
}

// echo returns its parameters and modes so tests can see what the logic got.
func echo(_ context.Context, req *ansible.Request) (*ansible.Result, error) {
	r := &ansible.Result{}
	r.Set("params", map[string]any(req.Params))
	r.Set("check_mode", req.CheckMode)
	r.Set("diff_mode", req.DiffMode)
	r.Set("internal", req.Internal)
	return r, nil
}

func call(t *testing.T, run ansible.Func, raw map[string]any) map[string]any {
	t.Helper()
	m := ansible.Module{Name: "instance_info", Spec: testSpec, Run: run}
	return m.Call(context.Background(), raw)
}

func params(out map[string]any) map[string]any {
	switch p := out["params"].(type) {
	case ansible.Params:
		return p
	case map[string]any:
		return p
	}
	return nil
}

func base() map[string]any { return map[string]any{"must": "x", "layout_file": "/l.yml"} }

func with(kv ...any) map[string]any {
	m := base()
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func TestValidate_UnknownParameterNamesItAndListsSupported(t *testing.T) {
	out := call(t, echo, with("nmae", "foo"))
	assert.Equal(t, true, out["failed"])
	msg := out["msg"].(string)
	assert.Contains(t, msg, "Unsupported parameters for (instance_info) module: nmae.")
	assert.Contains(t, msg, "Supported parameters include: ")
	assert.Contains(t, msg, "login_password (password)")
}

func TestValidate_InternalKeysAreSplitAndUnknownOnesTolerated(t *testing.T) {
	out := call(t, echo, with("_ansible_check_mode", true, "_ansible_diff", "yes",
		"_ansible_some_future_key", 42, "_ansible_verbosity", 3))
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["check_mode"])
	assert.Equal(t, true, out["diff_mode"])
	internal := out["internal"].(map[string]any)
	assert.Contains(t, internal, "some_future_key")
	assert.NotContains(t, out["params"], "_ansible_verbosity")
}

func TestValidate_Coercion(t *testing.T) {
	cases := []struct {
		key  string
		in   any
		want any
	}{
		{"enabled", "yes", true}, {"enabled", "on", true}, {"enabled", "1", true}, {"enabled", "True", true},
		{"enabled", "no", false}, {"enabled", "off", false}, {"enabled", "0", false}, {"enabled", json.Number("1"), true},
		{"count", "30", int64(30)}, {"count", json.Number("30"), int64(30)}, {"count", 7.0, int64(7)},
		{"ratio", "0.5", 0.5}, {"ratio", json.Number("2"), 2.0},
		{"items", "a,b", []any{"a", "b"}}, {"items", []any{"a", json.Number("3")}, []any{"a", "3"}},
		{"opts", "a=1 b=2", map[string]any{"a": "1", "b": "2"}},
		{"opts", `{"a": 1}`, map[string]any{"a": json.Number("1")}},
		{"name", json.Number("42"), "42"}, {"name", true, "True"},
		{"anything", []any{"x"}, []any{"x"}},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			out := call(t, echo, with(c.key, c.in))
			require.Equal(t, false, out["failed"], out["msg"])
			assert.Equal(t, c.want, params(out)[c.key])
		})
	}
}

func TestValidate_PathExpandsHome(t *testing.T) {
	t.Setenv("HOME", "/home/op")
	out := call(t, echo, with("dir", "~/fleet"))
	assert.Equal(t, "/home/op/fleet", params(out)["dir"])
}

func TestValidate_Refusals(t *testing.T) {
	cases := map[string]struct {
		raw  map[string]any
		want string
	}{
		"bad bool":           {with("enabled", "maybe"), "argument 'enabled' cannot be converted to a bool"},
		"bad int":            {with("count", "thirty"), "argument 'count' cannot be converted to an int"},
		"fractional int":     {with("count", 1.5), "argument 'count' cannot be converted to an int"},
		"list for str":       {with("name", []any{"a", "b"}), "argument 'name' is of type list"},
		"dict for str":       {with("name", map[string]any{"a": "b"}), "argument 'name' is of type dict"},
		"choice":             {with("mode", "sometimes"), "value of mode must be one of: auto, manual, got: sometimes"},
		"missing required":   {map[string]any{"layout_file": "/l"}, "missing required arguments: must"},
		"mutually exclusive": {with("layout", map[string]any{}), "parameters are mutually exclusive: layout|layout_file"},
		"required one of":    {map[string]any{"must": "x"}, "one of the following is required: layout, layout_file"},
		"alias twice":        {with("login_password", "a", "password", "b"), "login_password was given twice, as login_password and as password"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			out := call(t, echo, c.raw)
			assert.Equal(t, true, out["failed"])
			assert.Equal(t, false, out["changed"])
			assert.Contains(t, out["msg"], c.want)
		})
	}
}

func TestValidate_DefaultsAndAliases(t *testing.T) {
	out := call(t, echo, with("password", "s3cret-value"))
	require.Equal(t, false, out["failed"], out["msg"])
	p := params(out)
	assert.Equal(t, false, p["enabled"])
	assert.Equal(t, "auto", p["mode"])
	assert.Nil(t, p["ratio"])
}

const secret = "hunter2-planted-secret"

func TestNoLog_SecretMaskedEverywhere(t *testing.T) {
	leaky := func(_ context.Context, req *ansible.Request) (*ansible.Result, error) {
		r := &ansible.Result{Changed: true}
		r.Warn("connecting with password %s", req.Params.String("login_password"))
		r.Set("dsn", "postgres://u:"+req.Params.String("login_password")+"@h/db")
		r.Set("nested", []any{map[string]any{secret: secret}})
		type typed struct{ DSN string }
		r.Set("typed", typed{DSN: "password=" + secret})
		r.Diff = &ansible.Diff{Before: secret, After: ""}
		return r, errors.New("connect failed for password=" + secret)
	}
	for _, key := range []string{"login_password", "password"} {
		out := call(t, leaky, with(key, secret))
		buf, err := json.Marshal(out)
		require.NoError(t, err)
		assert.NotContains(t, string(buf), secret)
		assert.Contains(t, string(buf), ansible.Masked)
		assert.Equal(t, "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER",
			out["invocation"].(map[string]any)["module_args"].(map[string]any)["login_password"])
	}
}

func TestResult_AlwaysCarriesChangedAndFailed(t *testing.T) {
	ok := func(context.Context, *ansible.Request) (*ansible.Result, error) { return nil, nil }
	out := call(t, ok, base())
	assert.Equal(t, false, out["changed"])
	assert.Equal(t, false, out["failed"])
	assert.NotContains(t, out, "msg")
	assert.NotContains(t, out, "warnings")
}

type hinted struct{}

func (hinted) Error() string { return "instance \"x\" not found" }
func (hinted) Hint() string  { return "run instance_info to list instances" }

func TestResult_ErrorHintIsAppended(t *testing.T) {
	fail := func(context.Context, *ansible.Request) (*ansible.Result, error) {
		return (&ansible.Result{}).Set("found", false), hinted{}
	}
	out := call(t, fail, base())
	assert.Equal(t, true, out["failed"])
	assert.Equal(t, false, out["found"])
	assert.Equal(t, `instance "x" not found. run instance_info to list instances`, out["msg"])
}

func execute(t *testing.T, run ansible.Func, args string, withFile bool) (map[string]any, int) {
	t.Helper()
	argv := []string{"instance_info"}
	if withFile {
		path := filepath.Join(t.TempDir(), "args")
		require.NoError(t, os.WriteFile(path, []byte(args), 0o600))
		argv = append(argv, path)
	}
	var buf bytes.Buffer
	code := ansible.Execute(context.Background(), ansible.Module{Name: "instance_info", Spec: testSpec, Run: run}, argv, &buf)
	require.Equal(t, 1, strings.Count(strings.TrimSpace(buf.String()), "\n")+1, "exactly one JSON line: %s", buf.String())
	var out map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &out), buf.String())
	return out, code
}

func TestExecute_PanicBecomesJSONFailure(t *testing.T) {
	boom := func(context.Context, *ansible.Request) (*ansible.Result, error) { panic("boom " + secret) }
	out, code := execute(t, boom, `{"must":"x","layout_file":"/l","login_password":"`+secret+`"}`, true)
	assert.Equal(t, 1, code)
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], "panicked: boom")
	assert.NotContains(t, out["msg"], secret)
}

func TestExecute_ArgsFileNotJSON(t *testing.T) {
	for _, bad := range []string{"name=foo", "", "[1,2]", `{"a":1} {"b":2}`, "null"} {
		out, code := execute(t, echo, bad, true)
		assert.Equal(t, 1, code, bad)
		assert.Equal(t, true, out["failed"], bad)
		assert.Contains(t, out["msg"], "not a JSON object", bad)
	}
}

func TestExecute_NoArgsFile(t *testing.T) {
	out, code := execute(t, echo, "", false)
	assert.Equal(t, 1, code)
	assert.Contains(t, out["msg"], "args file")
}

func TestExecute_SuccessExitsZero(t *testing.T) {
	out, code := execute(t, echo, `{"must":"x","layout_file":"/l","count":"5"}`, true)
	assert.Equal(t, 0, code)
	assert.Equal(t, false, out["failed"])
	assert.EqualValues(t, 5, params(out)["count"])
}

func TestExecute_LegacyWrappedArgs(t *testing.T) {
	out, code := execute(t, echo, `{"ANSIBLE_MODULE_ARGS":{"must":"x","layout_file":"/l"}}`, true)
	assert.Equal(t, 0, code, out["msg"])
}
