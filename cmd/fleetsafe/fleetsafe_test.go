package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/stretchr/testify/require"
)

// fleet makes a fleet of directory-only instances (no database) and points
// discovery at its unit tree.
func fleet(t *testing.T, names ...string) *fleettest.Fleet {
	t.Helper()
	f, err := fleettest.Generate(context.Background(), fleettest.Spec{Root: t.TempDir(), Names: names})
	require.NoError(t, err)
	t.Setenv("FLEETSAFE_SYSTEMD_DIR", f.SystemdDir)
	return f
}

// cli runs the built binary and returns its exit status, stdout and stderr.
func cli(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, out.String(), errOut.String()
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(s), &m), s)
	return m
}

// One module, three ways in: through ansible-playbook by FQCN (the action
// plugin runs the cached multi-call binary), through ansible-playbook by
// the short name of build/library (ansible-core copies the hard link named
// after the module and runs it as AnsiballZ_instance_info), and through
// the command line. All three find the same instance with the same
// fingerprint.
func TestFleetsafe_ModuleUnderAnsiblePlaybookAndCLI(t *testing.T) {
	f := fleet(t, "acme", "globex")
	lib := fleettest.BuildModules(t, "instance_info")
	dir := t.TempDir()
	out := filepath.Join(dir, "out.json")
	play := filepath.Join(dir, "play.yml")
	require.NoError(t, os.WriteFile(play, []byte(`- hosts: localhost
  gather_facts: false
  tasks:
    - name: By FQCN, through the action plugin and its cache
      fleetsafe.instances.instance_info: {layout_file: "{{ layout }}", name: acme}
      register: fq
    - name: By the short name of the library directory
      instance_info: {layout_file: "{{ layout }}", name: acme}
      register: short
    - name: Keep both results
      ansible.builtin.copy:
        content: "{{ {'fq': fq, 'short': short} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
`), 0o644))
	cache := filepath.Join(dir, "cache")
	pb := fleettest.RunPlaybookArgs(t, lib, []string{"-i", filepath.Join(fleettest.RepoRoot(), "playbooks", "inventory", "localhost.yml"), play},
		map[string]any{"layout": f.LayoutFile, "out": out, "fleetsafe_cache_dir": cache})
	require.NoError(t, pb.Err, pb.Output)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	var res struct{ FQ, Short map[string]any }
	require.NoError(t, json.Unmarshal(data, &struct {
		FQ    *map[string]any `json:"fq"`
		Short *map[string]any `json:"short"`
	}{&res.FQ, &res.Short}))
	// The FQCN task ran the binary of the cache.
	cached, err := filepath.Glob(filepath.Join(cache, "*", "fleetsafe"))
	require.NoError(t, err)
	require.Len(t, cached, 1, "one binary in the cache")

	bin := filepath.Join(lib, "fleetsafe")
	code, stdout, _ := cli(t, bin, "info", "--layout-file", f.LayoutFile, "acme", "--json")
	require.Equal(t, 0, code, stdout)
	viaCLI := decode(t, stdout)

	for name, r := range map[string]map[string]any{"fqcn": res.FQ, "short name": res.Short, "cli": viaCLI} {
		require.Equal(t, true, r["found"], "%s: %v", name, r)
		require.Equal(t, false, r["changed"], name)
		require.NotEmpty(t, r["fingerprint"], name)
		require.Equal(t, viaCLI["fingerprint"], r["fingerprint"], "%s finds another fingerprint than the CLI", name)
	}

	// Human output: a status line, then the return values as YAML.
	code, stdout, _ = cli(t, bin, "info", "--layout-file="+f.LayoutFile, "--name", "acme")
	require.Equal(t, 0, code, stdout)
	require.True(t, strings.HasPrefix(stdout, "ok\n"), stdout)
	require.Contains(t, stdout, "\n  found: true\n")
	require.Contains(t, stdout, "fingerprint: "+viaCLI["fingerprint"].(string))
	require.NotContains(t, stdout, "invocation")
}

// The operator's day without AWX: check mode, the soft delete, the archive
// verified by itself (and a corrupted copy refused), the restore; exit
// statuses say failure, usage errors are told apart.
func TestFleetsafe_CLISoftDeleteVerifyRestore(t *testing.T) {
	f := fleet(t, "acme", "globex")
	bin := fleettest.BuildFleetsafe(t, t.TempDir())
	archives := t.TempDir()
	data := f.Path("data", "acme")
	base := []string{"--layout-file", f.LayoutFile, "--archive-dir", archives}

	code, stdout, stderr := cli(t, bin, append([]string{"soft-delete", "acme", "--reason", "cli test", "--check"}, base...)...)
	require.Equal(t, 0, code, stdout+stderr)
	require.DirExists(t, data, "check mode moved the instance")
	entries, err := os.ReadDir(archives)
	require.NoError(t, err)
	require.Empty(t, entries, "check mode wrote into the archive directory")

	code, stdout, stderr = cli(t, bin, append([]string{"soft-delete", "acme", "--reason", "cli test", "--json"}, base...)...)
	require.Equal(t, 0, code, stdout+stderr)
	del := decode(t, stdout)
	require.Equal(t, true, del["changed"])
	require.NoDirExists(t, data)
	require.DirExists(t, f.Path("data", "globex"), "another instance was touched")
	archive := del["archive"].(map[string]any)["path"].(string)

	code, stdout, _ = cli(t, bin, "verify-archive", archive)
	require.Equal(t, 0, code, stdout)
	require.True(t, strings.HasPrefix(stdout, "ok: archive "), stdout)

	corrupt := filepath.Join(t.TempDir(), filepath.Base(archive))
	raw, err := os.ReadFile(archive)
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0xff
	require.NoError(t, os.WriteFile(corrupt, raw, 0o600))
	code, stdout, _ = cli(t, bin, "verify-archive", corrupt, "--json")
	require.Equal(t, 1, code, stdout)
	require.Equal(t, true, decode(t, stdout)["failed"])

	code, stdout, stderr = cli(t, bin, append([]string{"restore", "acme"}, base...)...)
	require.Equal(t, 0, code, stdout+stderr)
	require.True(t, strings.HasPrefix(stdout, "changed"), stdout)
	require.DirExists(t, data)

	// A usage error is exit status 2 and names the option; a module's
	// refusal (a glob for a name) is 1.
	code, _, stderr = cli(t, bin, "restore", "acme", "--archive-dri", archives)
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "unknown option --archive-dri")
	code, stdout, _ = cli(t, bin, append([]string{"soft-delete", "acme*", "--reason", "x"}, base...)...)
	require.Equal(t, 1, code, stdout)
	require.True(t, strings.HasPrefix(stdout, "FAILED: "), stdout)
	require.DirExists(t, f.Path("data", "globex"))
}

// Every command has --help built from its module's documentation, and
// every parameter of the module's spec has a flag there.
func TestFleetsafe_Help(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"fleetsafe", "--help"}, nil, &out, &errOut))
	usage := out.String()
	for _, c := range commands {
		require.Contains(t, usage, "  "+c.name+" ")
		out.Reset()
		require.Equal(t, 0, run(context.Background(), []string{"fleetsafe", c.name, "--help"}, nil, &out, &errOut), c.name)
		for name := range c.module.Spec.Params {
			require.Contains(t, out.String(), flag(name), "%s --help", c.name)
		}
		require.NotRegexp(t, `\b[OCV]\(`, out.String(), "%s --help shows ansible-doc markup", c.name)
	}
	out.Reset()
	require.Equal(t, 2, run(context.Background(), []string{"fleetsafe", "bogus"}, nil, &out, &errOut))
}

// The protocol entry points: a file named after a module (or ansible-core's
// AnsiballZ_ copy of it) is that module, `fleetsafe module <name> -` reads
// the arguments from stdin, and an unknown module is a failed result, not
// a command line.
func TestFleetsafe_MultiCallDispatch(t *testing.T) {
	f := fleet(t, "acme")
	args := `{"layout_file": "` + f.LayoutFile + `", "name": "acme"}`
	argsFile := filepath.Join(t.TempDir(), "args")
	require.NoError(t, os.WriteFile(argsFile, []byte(args), 0o600))
	for _, argv := range [][]string{
		{"/tmp/x/instance_info", argsFile},
		{"/root/.ansible/tmp/ansible-tmp-1/AnsiballZ_instance_info", argsFile},
		{"/var/cache/fleetsafe/abc/fleetsafe", "module", "instance_info", "-"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), argv, strings.NewReader(args), &out, &errOut)
		require.Equal(t, 0, code, "%v: %s", argv, out.String())
		require.Equal(t, true, decode(t, out.String())["found"], argv)
	}
	var out, errOut bytes.Buffer
	require.Equal(t, 1, run(context.Background(), []string{"fleetsafe", "module", "instance_nope", "-"}, strings.NewReader("{}"), &out, &errOut))
	require.Contains(t, decode(t, out.String())["msg"], `no module "instance_nope"`)
}
