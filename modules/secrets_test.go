// Package modules_test checks properties shared by every module binary.
package modules_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

const (
	plantedParam = "Pl4nted-login-password-7f3a"
	plantedEnv   = "Pl4nted-PGPASSWORD-91c2"
)

// TestSecrets_NeverInAnyOutput runs every module binary, as ansible-core
// does, with a planted login_password and a planted PGPASSWORD, through
// successful and failing runs, and greps everything they produce: results,
// errors, warnings, archives (decompressed), sidecars, tombstones,
// RESTORE.md, metrics and state files.
func TestSecrets_NeverInAnyOutput(t *testing.T) {
	lib := fleettest.BuildModules(t)
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme", "globex"}, DB: true, Backups: true})
	for _, n := range []string{"acme", "globex"} {
		_, err := f.WriteBackups(t.Context(), n, time.Now().Add(-time.Hour))
		require.NoError(t, err)
	}
	out := t.TempDir()
	archives := filepath.Join(out, "archives")
	env := []string{"FLEETSAFE_SYSTEMD_DIR=" + f.SystemdDir, "PGPASSWORD=" + plantedEnv}
	common := map[string]any{"layout_file": f.LayoutFile, "login_password": plantedParam}
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
	runs := []struct {
		module string
		args   map[string]any
	}{
		{"instance_info", with()},
		{"instance_info", with("name", "acme")},
		{"instance_info", with("name", "acme", "login_host", "/nonexistent")}, // fails to connect
		{"instance_info", with("name", "acme", "login_user", "nobody-"+plantedParam)},
		{"instance_soft_delete", with("name", "acme", "archive_dir", archives, "reason", "secrets test")},
		{"instance_soft_delete", with("name", "globex", "archive_dir", archives, "reason", "x", "login_host", "127.0.0.1", "port", 1)},
		{"instance_restore", with("name", "acme", "archive_dir", archives)},
		{"instance_soft_delete", with("name", "acme", "archive_dir", archives, "reason", "again")},
		{"instance_purge", map[string]any{"archive_dir": archives, "login_password": plantedParam, "name": "acme", "keep_last": 0}},
		{"backup_verify", with("restore_test", 1, "metrics_file", filepath.Join(out, "m.prom"), "state_file", filepath.Join(out, "state.json"))},
		{"backup_verify", with("login_host", "/nonexistent")},
	}
	failures := 0
	for _, r := range runs {
		data, err := json.Marshal(r.args)
		require.NoError(t, err)
		argsFile := filepath.Join(t.TempDir(), "args")
		require.NoError(t, os.WriteFile(argsFile, data, 0o600))
		cmd := exec.Command(filepath.Join(lib, r.module), argsFile)
		cmd.Env = append(os.Environ(), env...)
		stdout, _ := cmd.CombinedOutput()
		assertClean(t, r.module+" output", string(stdout))
		if strings.Contains(string(stdout), `"failed":true`) {
			failures++
		}
	}
	assert.GreaterOrEqual(t, failures, 3, "failing runs are part of the check")
	written := 0
	require.NoError(t, filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
		require.NoError(t, err)
		if fi.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		assertClean(t, p, string(data))
		if strings.HasSuffix(p, ".tar.zst") {
			assertClean(t, p+" (decompressed)", fleettest.Unzstd(t, data))
		}
		written++
		return nil
	}))
	assert.Greater(t, written, 4, "archives, sidecars, tombstones and metrics were checked")
}

func assertClean(t *testing.T, where, s string) {
	t.Helper()
	assert.NotContains(t, s, plantedParam, where)
	assert.NotContains(t, s, plantedEnv, where)
}
