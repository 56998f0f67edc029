package modules_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// reservedKeys are the top-level result keys that Ansible owns: set by
// ansible-core itself, given a meaning by it (a `skipped` value makes the
// task show as skipped; a `results` list is read as a loop's), or read by
// its callbacks. A module's own return values must use none of them.
var reservedKeys = map[string]bool{
	"changed": true, "failed": true, "skipped": true, "skip_reason": true, "msg": true,
	"rc": true, "results": true, "diff": true, "warnings": true, "deprecations": true,
	"invocation": true, "exception": true, "ansible_facts": true,
	"stdout": true, "stderr": true, "stdout_lines": true, "stderr_lines": true,
	"module_stdout": true, "module_stderr": true, "unreachable": true, "attempts": true,
	"item": true, "ansible_loop_var": true, "ansible_index_var": true, "censored": true,
	"changed_when_result": true, "failed_when_result": true, "false_condition": true,
	"started": true, "finished": true, "ansible_job_id": true, "results_file": true,
	"backup_file": true, "checksum": true,
}

func reserved(key string) bool {
	return reservedKeys[key] || strings.HasPrefix(key, "ansible_") || strings.HasPrefix(key, "_ansible")
}

// protocolKeys are the reserved keys a module sets on purpose, through the
// module protocol (pkg/ansible), each with the type Ansible expects.
var protocolKeys = map[string]func(any) bool{
	"changed": func(v any) bool { _, ok := v.(bool); return ok },
	"failed":  func(v any) bool { _, ok := v.(bool); return ok },
	"msg":     func(v any) bool { _, ok := v.(string); return ok },
	"warnings": func(v any) bool {
		l, ok := v.([]any)
		for _, x := range l {
			if _, s := x.(string); !s {
				return false
			}
		}
		return ok
	},
	// The module's arguments, no_log values masked, as AnsibleModule gives.
	"invocation": func(v any) bool {
		d, ok := v.(map[string]any)
		_, args := d["module_args"].(map[string]any)
		return ok && args && len(d) == 1
	},
	// Text on both sides: the diff callback fails on a list.
	"diff": func(v any) bool {
		d, ok := v.(map[string]any)
		if !ok {
			return false
		}
		for _, side := range []string{"before", "after"} {
			if _, s := d[side].(string); !s {
				return false
			}
		}
		return true
	},
}

func moduleNames(t *testing.T) []string {
	entries, err := os.ReadDir(".")
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(e.Name(), e.Name()+".yml")); e.IsDir() && err == nil {
			names = append(names, e.Name())
		}
	}
	require.Len(t, names, 5)
	return names
}

// TestReservedKeys_NotInReturnDocs walks each module's RETURN doc: no
// documented return value may be a key Ansible owns.
func TestReservedKeys_NotInReturnDocs(t *testing.T) {
	for _, m := range moduleNames(t) {
		data, err := os.ReadFile(filepath.Join(m, m+".yml"))
		require.NoError(t, err)
		var doc struct {
			Return map[string]map[string]any `yaml:"RETURN"`
		}
		require.NoError(t, yaml.Unmarshal(data, &doc), m)
		require.NotEmpty(t, doc.Return, "%s documents its return values", m)
		for key := range doc.Return {
			assert.False(t, reserved(key), "%s.yml documents the return value %q, a key Ansible owns", m, key)
		}
	}
}

// TestReservedKeys_NotInResults runs every module binary, as ansible-core
// does, through successful, check-mode, diff-mode and failing runs, and
// checks every top-level key of every result: a reserved key only where
// the module protocol sets it, with the type Ansible expects (text diffs),
// and each other key documented in RETURN.
func TestReservedKeys_NotInResults(t *testing.T) {
	lib := fleettest.BuildModules(t)
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme", "globex"}, DB: true, Backups: true})
	for _, n := range []string{"acme", "globex"} {
		_, err := f.WriteBackups(t.Context(), n, time.Now().Add(-time.Hour))
		require.NoError(t, err)
	}
	out := t.TempDir()
	archives := filepath.Join(out, "archives")
	common := map[string]any{"layout_file": f.LayoutFile}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range common {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	diff := map[string]any{"_ansible_diff": true}
	check := map[string]any{"_ansible_check_mode": true, "_ansible_diff": true}
	runs := []struct {
		module   string
		args     map[string]any
		internal map[string]any
	}{
		{"instance_info", with(), nil},
		{"instance_info", with("name", "acme"), nil},
		{"instance_info", with("name", "acme", "login_host", "/nonexistent"), nil}, // fails
		{"instance_soft_delete", with("name", "acme", "archive_dir", archives, "reason", "r"), check},
		{"instance_soft_delete", with("name", "acme", "archive_dir", archives, "reason", "r"), diff},
		{"instance_soft_delete", with("name", "acme", "archive_dir", archives, "reason", "r"), diff},  // already deleted
		{"instance_soft_delete", with("name", "nobody", "archive_dir", archives, "reason", "r"), nil}, // fails
		{"instance_restore", with("name", "acme", "archive_dir", archives), check},
		{"instance_restore", with("name", "acme", "archive_dir", archives), diff},
		{"instance_restore", with("name", "acme", "archive_dir", archives), nil}, // nothing to restore
		{"instance_soft_delete", with("name", "acme", "archive_dir", archives, "reason", "again", "retention_days", 0), diff},
		{"instance_purge", with("archive_dir", archives, "name", "acme", "keep_last", 0), check},
		{"instance_purge", with("archive_dir", archives, "name", "acme", "keep_last", 0), diff},
		{"instance_purge", map[string]any{"archive_dir": filepath.Join(out, "none"), "bogus": 1}, nil}, // fails
		{"backup_verify", with("restore_test", 1, "metrics_file", filepath.Join(out, "m.prom")), nil},
		{"backup_verify", with("login_host", "/nonexistent", "fail_on", "never"), nil},
	}
	docs := map[string]map[string]any{}
	for _, m := range moduleNames(t) {
		data, err := os.ReadFile(filepath.Join(m, m+".yml"))
		require.NoError(t, err)
		var doc struct {
			Return map[string]any `yaml:"RETURN"`
		}
		require.NoError(t, yaml.Unmarshal(data, &doc))
		docs[m] = doc.Return
	}
	seen, diffs := map[string]bool{}, map[string]bool{}
	for i, r := range runs {
		args := map[string]any{}
		for k, v := range r.args {
			args[k] = v
		}
		for k, v := range r.internal {
			args[k] = v
		}
		data, err := json.Marshal(args)
		require.NoError(t, err)
		argsFile := filepath.Join(t.TempDir(), "args")
		require.NoError(t, os.WriteFile(argsFile, data, 0o600))
		cmd := exec.Command(filepath.Join(lib, r.module), argsFile)
		cmd.Env = append(os.Environ(), "FLEETSAFE_SYSTEMD_DIR="+f.SystemdDir)
		stdout, _ := cmd.Output()
		var res map[string]any
		require.NoError(t, json.Unmarshal(stdout, &res), "run %d (%s): %s", i, r.module, stdout)
		keys := make([]string, 0, len(res))
		for k := range res {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if _, ok := res["diff"]; ok {
			diffs[r.module] = true
		}
		for _, k := range keys {
			seen[k] = true
			if typeOK, ok := protocolKeys[k]; ok {
				assert.True(t, typeOK(res[k]), "run %d (%s): %s has the wrong type for Ansible: %#v", i, r.module, k, res[k])
				continue
			}
			assert.False(t, reserved(k), "run %d (%s): result key %q is Ansible's", i, r.module, k)
			_, documented := docs[r.module][k]
			assert.True(t, documented, "run %d (%s): result key %q is not in RETURN", i, r.module, k)
		}
	}
	// The runs reach what they are meant to check.
	for _, k := range []string{"changed", "failed", "msg", "diff", "warnings", "invocation"} {
		assert.True(t, seen[k], "no run returned %s", k)
	}
	for _, m := range []string{"instance_soft_delete", "instance_purge"} {
		assert.True(t, diffs[m], "no %s run returned a diff", m)
	}
}

// TestDiff_ThroughTheCallback runs a soft delete and a purge with
// `ansible-playbook --diff`: Ansible's diff callback must render both
// (it failed on the lists instance_purge returned), as text.
func TestDiff_ThroughTheCallback(t *testing.T) {
	fleettest.AnsiblePlaybook(t)
	lib := fleettest.BuildModules(t)
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	archives := t.TempDir()
	inv := fleettest.Inventory(t, archives, map[string]*fleettest.Fleet{"web-a": f})
	play := `- hosts: web-a
  gather_facts: false
  environment:
    FLEETSAFE_SYSTEMD_DIR: "{{ fleetsafe_systemd_dir }}"
  module_defaults:
    group/fleetsafe.instances.all:
      archive_dir: "{{ fleetsafe_archive_dir }}"
      layout_file: "{{ fleetsafe_layout_file }}"
  tasks:
    - name: Soft-delete with no retention
      fleetsafe.instances.instance_soft_delete:
        name: acme
        reason: diff test
        retention_days: 0
    - name: Purge it
      fleetsafe.instances.instance_purge:
        name: acme
        keep_last: 0
`
	pb := filepath.Join(t.TempDir(), "diff.yml")
	require.NoError(t, os.WriteFile(pb, []byte(play), 0o644))
	run := fleettest.RunPlaybookArgs(t, lib, []string{"-i", inv, "--diff", pb}, map[string]any{})
	require.NoError(t, run.Err, run.Output)
	assert.Regexp(t, `(?s)--- before: in place.*\+\+\+ after: quarantined.*-[a-z_]+: /`, run.Output, "the soft delete's diff, one component a line")
	assert.Regexp(t, `(?s)--- before: kept.*\+\+\+ after: purged.*-/`, run.Output, "the purge's diff, one removed path a line")
	assert.Regexp(t, `web-a\s*:\s*ok=2\s+changed=2\s+unreachable=0\s+failed=0`, run.Output)
}
