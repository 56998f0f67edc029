package awxsurvey

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

func decode(t *testing.T, s string) Spec {
	t.Helper()
	spec, err := Decode([]byte(s))
	require.NoError(t, err)
	return spec
}

// specFromElement is spec_from_element of AWX's TestSurveySpecValidation.
func specFromElement(item map[string]any) Spec {
	for k, v := range map[string]any{"name": "foo", "variable": "foo", "required": false, "question_name": "foo", "type": "text"} {
		if _, ok := item[k]; !ok {
			item[k] = v
		}
	}
	return Spec{"name": "test survey", "description": "foo", "spec": []any{item}}
}

// The cases of AWX's own unit tests of _validate_spec_data
// (awx/main/tests/unit/api/test_views.py, TestSurveySpecValidation), with
// the error text AWX asserts: the port answers as AWX does.
func TestValidateSpec_AWXUnitTestCases(t *testing.T) {
	n := func(s string) json.Number { return json.Number(s) }
	for _, c := range []struct {
		item map[string]any
		want string
	}{
		{map[string]any{"type": "password", "default": []any{"some", "invalid", "list"}}, "expected to be string"},
		{map[string]any{"type": "password", "default": false}, "expected to be string"},
		{map[string]any{"type": "integer", "default": "foo"}, "expected to be int"},
		{map[string]any{"type": "integer", "default": "🐉"}, "expected to be int"},
		{map[string]any{"type": "foo"}, "allowed question types"},
		{map[string]any{"type": "🐉"}, "allowed question types"},
		{map[string]any{"type": "multiplechoice"}, "multiplechoice must specify choices"},
		{map[string]any{"type": "integer", "min": "foo"}, "min limit in survey question 0 expected to be integer"},
		{map[string]any{"question_name": n("42")}, "'question_name' in survey question 0 expected to be string."},
		{map[string]any{"type": "text", "default": "$encrypted$", "min": n("0"), "max": n("1024"), "required": true, "choices": ""},
			"$encrypted$ is a reserved keyword for password question defaults"},
		{map[string]any{"type": "password", "default": "$encrypted$foo"}, "may not be used for new default"},
	} {
		err := ValidateSpec(specFromElement(c.item))
		var ae *Error
		require.True(t, errors.As(err, &ae), "%v must be refused (%s)", c.item, c.want)
		assert.Contains(t, ae.Msg, c.want)
	}

	spec := specFromElement(map[string]any{})
	spec["spec"].([]any)[0] = "foo"
	assert.ErrorContains(t, ValidateSpec(spec), "Survey question 0 is not a json object")

	spec = specFromElement(map[string]any{})
	first := spec["spec"].([]any)[0].(map[string]any)
	second := map[string]any{}
	for k, v := range first {
		second[k] = v
	}
	spec["spec"] = append(spec["spec"].([]any), second)
	assert.ErrorContains(t, ValidateSpec(spec), "'variable' 'foo' duplicated in survey question 1.")

	spec = specFromElement(map[string]any{})
	delete(spec["spec"].([]any)[0].(map[string]any), "type")
	assert.ErrorContains(t, ValidateSpec(spec), "'type' missing from survey question 0")
}

// The schema checks, and the choice rules the unit tests above do not
// cover: an empty spec (what fleet_report.json had), a default outside the
// choices, two defaults for a single choice; and what AWX lets through
// (booleans are ints to isinstance; a default that is a substring of the
// choices passes, as AWX's `in` on a string does).
func TestValidateSpec_SchemaAndChoices(t *testing.T) {
	assert.ErrorContains(t, ValidateSpec(decode(t, `{"name": "x", "description": "y", "spec": []}`)), "'spec' doesn't contain any items.")
	assert.ErrorContains(t, ValidateSpec(decode(t, `{"name": "x", "spec": [1]}`)), "Field 'description' is missing from survey spec.")
	assert.ErrorContains(t, ValidateSpec(decode(t, `{"name": "x", "description": "y", "spec": {}}`)), "Expected list of items for field 'spec', received dict type.")
	q := func(extra string) Spec {
		return decode(t, `{"name": "x", "description": "y", "spec": [{"type": "multiplechoice", "question_name": "q",
			"variable": "v", "required": true, "choices": "a\nb\n\n"`+extra+`}]}`)
	}
	assert.ErrorContains(t, ValidateSpec(q(`, "default": "c"`)), "Default choice must be answered from the choices listed.")
	assert.ErrorContains(t, ValidateSpec(q(`, "default": "a\nb"`)), "can only have one default value")
	assert.ErrorContains(t, ValidateSpec(q(`, "default": 1`)), "expected to be string")
	s := q(`, "default": "a"`)
	require.NoError(t, ValidateSpec(s))
	assert.Equal(t, "a\nb", s["spec"].([]any)[0].(map[string]any)["choices"], "blank choices removed, as AWX stores them")
	require.NoError(t, ValidateSpec(decode(t, `{"name": "x", "description": "y", "spec": [{"type": "integer", "question_name": "q",
		"variable": "v", "required": true, "min": true, "default": false}]}`)), "isinstance(True, int) holds in Python")
	assert.ErrorContains(t, ValidateSpec(decode(t, `{"name": "x", "description": "y", "spec": [{"type": "integer", "question_name": "q",
		"variable": "v", "required": true, "min": 1.5}]}`)), "min limit in survey question 0 expected to be integer")
}

// Launch-time answers (_survey_element_validation): lengths in characters,
// integer bounds, choices.
func TestValidateAnswer(t *testing.T) {
	item := map[string]any{"type": "text", "variable": "v", "required": true, "min": json.Number("2"), "max": json.Number("3")}
	assert.Equal(t, []string{"'v' value missing"}, ValidateAnswer(item, map[string]any{}))
	assert.Empty(t, ValidateAnswer(item, map[string]any{"v": "été"}), "three characters")
	assert.Len(t, ValidateAnswer(item, map[string]any{"v": "a"}), 1)
	assert.Len(t, ValidateAnswer(item, map[string]any{"v": "abcd"}), 1)
	i := map[string]any{"type": "integer", "variable": "n", "required": false, "min": json.Number("1"), "max": json.Number("5")}
	assert.Empty(t, ValidateAnswer(i, map[string]any{"n": json.Number("5")}))
	assert.Len(t, ValidateAnswer(i, map[string]any{"n": json.Number("6")}), 1)
	assert.Len(t, ValidateAnswer(i, map[string]any{"n": true}), 1, "type(v) != int refuses a boolean")
	m := map[string]any{"type": "multiselect", "variable": "c", "required": false, "choices": "a\nb"}
	assert.Empty(t, ValidateAnswer(m, map[string]any{"c": []any{"a", "b"}}))
	assert.Len(t, ValidateAnswer(m, map[string]any{"c": []any{"ab"}}), 1)
	assert.Len(t, ValidateAnswer(m, map[string]any{"c": "a"}), 1)
}

// renderSurveys runs configure_awx.yml in its render mode: the surveys as
// AWX would receive them, for the given layouts.
func renderSurveys(t *testing.T, layouts []string) map[string]Spec {
	t.Helper()
	bin := fleettest.AnsiblePlaybook(t)
	dir := t.TempDir()
	vars, err := json.Marshal(map[string]any{"awx_inventory": "fleet", "awx_layouts": layouts, "fleetsafe_awx_render_dir": dir})
	require.NoError(t, err)
	cmd := exec.Command(bin, "-e", string(vars), "playbooks/awx/configure_awx.yml")
	cmd.Dir = fleettest.RepoRoot()
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(fleettest.RepoRoot(), "ansible.cfg"), "ANSIBLE_NOCOLOR=1",
		"ANSIBLE_LOCAL_TEMP="+t.TempDir())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	specs := map[string]Spec{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		specs[filepath.Base(f)] = decode(t, string(data))
	}
	return specs
}

// Every survey, as a file and as configure_awx.yml sends it, passes AWX's
// rules; the restore survey offers exactly the components of the given
// layouts (not Tracim's names whatever the layout); and the verify
// survey's defaults, which answer the nightly schedule, are all kept.
func TestSurveys_AWXAcceptsThem(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(fleettest.RepoRoot(), "playbooks", "awx", "surveys", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.NoError(t, ValidateSpec(decode(t, string(data))), f)
	}

	root := fleettest.RepoRoot()
	layouts := []string{filepath.Join(root, "examples", "layouts", "nextcloud.yml")}
	rendered := renderSurveys(t, layouts)
	require.Len(t, rendered, len(files), "every survey file is sent")
	for name, spec := range rendered {
		assert.NoError(t, ValidateSpec(spec), name)
	}
	var want []string
	for _, l := range layouts {
		data, err := os.ReadFile(l)
		require.NoError(t, err)
		var layout struct{ Components []struct{ Name string } }
		require.NoError(t, yaml.Unmarshal(data, &layout))
		for _, c := range layout.Components {
			want = append(want, c.Name)
		}
	}
	sort.Strings(want)
	var got []string
	for _, q := range rendered["restore_instance.json"]["spec"].([]any) {
		if q.(map[string]any)["variable"] == "components" {
			got = Choices(q.(map[string]any))
		}
	}
	assert.Equal(t, want, got, "the restore survey offers the layout's components")
	assert.Contains(t, got, "webroot")
	assert.NotContains(t, got, "logs", "no Tracim name for a Nextcloud fleet")

	assert.Empty(t, DroppedDefaults(rendered["verify_backups.json"]), "the nightly schedule answers nothing: every default must hold")
	for _, q := range rendered["verify_backups.json"]["spec"].([]any) {
		item := q.(map[string]any)
		if item["required"] == true {
			_, has := item["default"]
			assert.True(t, has, "required question %v has a default for the schedule", item["variable"])
		}
	}
}

// configure_awx.yml posts no survey for a template without one, and
// refuses to run without the layouts the restore survey needs.
func TestConfigureAWX_NoEmptySurveyAndLayoutsRequired(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(fleettest.RepoRoot(), "playbooks", "awx", "configure_awx.yml"))
	require.NoError(t, err)
	var plays []struct {
		Vars map[string]any `yaml:"vars"`
	}
	require.NoError(t, yaml.Unmarshal(data, &plays))
	for _, tmpl := range plays[0].Vars["fleetsafe_awx_templates"].([]any) {
		tm := tmpl.(map[string]any)
		if s, _ := tm["survey"].(string); s != "" {
			_, err := os.Stat(filepath.Join(fleettest.RepoRoot(), "playbooks", "awx", "surveys", s))
			assert.NoError(t, err, "survey of %s", tm["name"])
		}
	}
	bin := fleettest.AnsiblePlaybook(t)
	cmd := exec.Command(bin, "-e", `{"awx_inventory": "fleet", "fleetsafe_awx_render_dir": "`+t.TempDir()+`"}`, "playbooks/awx/configure_awx.yml")
	cmd.Dir = fleettest.RepoRoot()
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(fleettest.RepoRoot(), "ansible.cfg"), "ANSIBLE_NOCOLOR=1")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "%s", out)
	assert.True(t, strings.Contains(string(out), "awx_layouts to the list of the fleet's layout files"), "%s", out)
}
