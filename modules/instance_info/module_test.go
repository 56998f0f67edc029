package instanceinfo

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

func call(t *testing.T, f *fleettest.Fleet, kv ...any) map[string]any {
	t.Helper()
	return f.CallModule(t, Module, kv...)
}

func TestInstanceInfo_ListsInstances(t *testing.T) {
	f := fleettest.New(t, true, "acme", "globex")
	out := call(t, f)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, false, out["changed"])
	insts := out["instances"].([]any)
	require.Len(t, insts, 2)
	assert.Equal(t, "acme", insts[0].(map[string]any)["name"])
	assert.Equal(t, "complete", insts[0].(map[string]any)["status"])
	assert.EqualValues(t, 2, out["count"])
}

func TestInstanceInfo_ExactName(t *testing.T) {
	f := fleettest.New(t, true, "acme", "acme-2")
	out := call(t, f, "name", "acme")
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["found"])
	assert.Equal(t, "acme", out["target"].(map[string]any)["name"])
	assert.Len(t, out["fingerprint"], 64)
	assert.Len(t, out["instances"], 1)
	assert.Equal(t, false, out["changed"])
}

func TestInstanceInfo_AbsentNameIsNotAFailure(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	out := call(t, f, "name", "nobody")
	assert.Equal(t, false, out["failed"])
	assert.Equal(t, false, out["found"])
	assert.Nil(t, out["target"])
	assert.Contains(t, out["msg"], "not found")
}

func TestInstanceInfo_RefusesBadNames(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	for _, bad := range []any{"", "acme*", "*", "../acme", "acme ", []any{"acme", "globex"}, "ac/me"} {
		out := call(t, f, "name", bad)
		assert.Equal(t, true, out["failed"], "%v must be refused", bad)
		assert.Equal(t, false, out["changed"])
		assert.NotContains(t, out, "target")
	}
}

func TestInstanceInfo_LayoutAsDict(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	t.Setenv("FLEETSAFE_SYSTEMD_DIR", f.SystemdDir)
	out := Module.Call(context.Background(), map[string]any{"layout": map[string]any{
		"app": f.App,
		"components": []any{map[string]any{
			"name": "config", "type": "dir", "path": filepath.Join(f.Root, "etc", f.App, "{name}")}},
	}})
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Len(t, out["instances"], 1)
}

func TestInstanceInfo_BadLayoutNamesFileLineKey(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	bad := filepath.Join(t.TempDir(), "bad.yml")
	require.NoError(t, os.WriteFile(bad, []byte("app: x\ncomponents:\n  - name: d\n    type: dir\n    path: /var/{name}\n"), 0o644))
	out := call(t, f, "layout_file", bad)
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], bad+" line 5, key components[0].path")
}

func TestInstanceInfo_PasswordNeverInResult(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	l := filepath.Join(t.TempDir(), "db.yml")
	require.NoError(t, os.WriteFile(l, []byte(fleettest.LayoutYAML(f.Root, f.App, true)), 0o644))
	const secret = "pl4nted-s3cret-pw"
	// A password is refused by the server or the host is unreachable;
	// either way the error must not carry the password.
	for _, host := range []string{"127.0.0.1", "/nonexistent"} {
		out := call(t, f, "layout_file", l, "login_password", secret, "login_host", host, "login_user", "nobody-"+secret)
		buf, _ := json.Marshal(out)
		assert.Equal(t, true, out["failed"])
		assert.NotContains(t, string(buf), secret)
	}
}

func TestInstanceInfo_UnderAnsiblePlaybook(t *testing.T) {
	f := fleettest.New(t, true, "acme", "globex", "initech")
	require.NoError(t, os.RemoveAll(f.Path("config", "initech")))
	lib := fleettest.BuildModules(t, "instance_info")
	report := filepath.Join(t.TempDir(), "report.json")
	run := fleettest.RunPlaybook(t, lib, "playbooks/fleet_report.yml", map[string]any{
		"fleetsafe_layout_file": f.LayoutFile,
		"fleetsafe_report_file": report,
		"fleetsafe_systemd_dir": f.SystemdDir,
	})
	require.NoError(t, run.Err, run.Output)
	assert.Contains(t, run.Output, "3 instances on 1 hosts")

	var rows []map[string]any
	data, err := os.ReadFile(report)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &rows))
	require.Len(t, rows, 3)
	assert.Equal(t, "initech", rows[0]["name"], "partial instances first")
	assert.Equal(t, "partial", rows[0]["status"])
	assert.Equal(t, []any{"config"}, rows[0]["missing"])
}

func TestInstanceInfo_PlaybookRefusesGlob(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	lib := fleettest.BuildModules(t, "instance_info")
	pb := filepath.Join(t.TempDir(), "pb.yml")
	require.NoError(t, os.WriteFile(pb, []byte(`- hosts: localhost
  gather_facts: false
  tasks:
    - instance_info:
        layout_file: "{{ layout }}"
        name: "acme*"
`), 0o644))
	run := fleettest.RunPlaybook(t, lib, pb, map[string]any{"layout": f.LayoutFile})
	require.Error(t, run.Err)
	assert.Contains(t, run.Output, "glob characters")
}

// archive_dir says whether the host holds archives of the name, present
// instance or not; a path there that is not a directory fails, and a name
// that could leave archive_dir is refused before any path is built.
func TestInstanceInfo_Archived(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	archives := t.TempDir()
	out := call(t, f, "name", "acme", "archive_dir", archives)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, false, out["archived"])
	assert.Equal(t, true, out["found"])

	require.NoError(t, os.Mkdir(filepath.Join(archives, "gone"), 0o700))
	out = call(t, f, "name", "gone", "archive_dir", archives)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["archived"])
	assert.Equal(t, false, out["found"])

	require.NoError(t, os.WriteFile(filepath.Join(archives, "odd"), nil, 0o600))
	out = call(t, f, "name", "odd", "archive_dir", archives)
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], "is not a directory")

	out = call(t, f, "name", "../"+filepath.Base(archives), "archive_dir", archives)
	assert.Equal(t, true, out["failed"])
	assert.NotContains(t, out, "archived")
}
