package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// TestFleetsafe_CLIRecover: `fleetsafe recover` without AWX. Of three
// instances with nightly backups, one lost its data and one is gone; the
// plan lists both and changes nothing; --confirm --priority restores them
// in that order and ends with the table; with a name, one instance, and
// --json gives the module's result.
func TestFleetsafe_CLIRecover(t *testing.T) {
	ctx := context.Background()
	f, err := fleettest.Generate(ctx, fleettest.Spec{Root: t.TempDir(), Names: []string{"acme", "globex", "initech"}, Backups: true})
	require.NoError(t, err)
	t.Setenv("FLEETSAFE_SYSTEMD_DIR", f.SystemdDir)
	for _, n := range []string{"acme", "globex", "initech"} {
		_, err := f.WriteBackups(ctx, n, time.Now().Add(-2*time.Hour))
		require.NoError(t, err)
	}
	require.NoError(t, os.RemoveAll(f.Path("data", "acme")))
	for _, c := range []string{"config", "data", "logs"} {
		require.NoError(t, os.RemoveAll(f.Path(c, "globex")))
	}
	require.NoError(t, os.Remove(f.SystemdDir+"/multi-user.target.wants/"+f.App+"@globex.service"))
	bin := fleettest.BuildFleetsafe(t, t.TempDir())

	code, stdout, stderr := cli(t, bin, "recover", "--layout-file", f.LayoutFile)
	require.Equal(t, 0, code, stdout+stderr)
	assert.True(t, strings.HasPrefix(stdout, "ok: 2 damaged instance(s)"), stdout)
	assert.Contains(t, stdout, "add --confirm")
	assert.Regexp(t, `(?m)^acme\s+planned\s+data\s`, stdout)
	assert.Regexp(t, `(?m)^globex\s+planned\s+config,data,logs,service\s`, stdout)
	require.NoDirExists(t, f.Path("data", "acme"), "the plan changed nothing")

	code, stdout, stderr = cli(t, bin, "recover", "--layout-file", f.LayoutFile, "--confirm", "--priority", "globex")
	require.Equal(t, 0, code, stdout+stderr)
	assert.True(t, strings.HasPrefix(stdout, "changed: 2 damaged instance(s)"), stdout)
	assert.Contains(t, stderr, "restoring globex (missing config, data, logs, service)…\nglobex: restored config, data, backup 2h0m0s old in", "progress per instance on stderr")
	lines := strings.Split(stdout, "\n")
	require.GreaterOrEqual(t, len(lines), 4, stdout)
	assert.True(t, strings.HasPrefix(lines[1], "INSTANCE"), stdout)
	assert.Regexp(t, `^globex\s+restored\s+\S+\s+config,data\s`, lines[2], "priority first")
	assert.Regexp(t, `^acme\s+restored\s+data\s+data\s`, lines[3])
	require.DirExists(t, f.Path("data", "acme"))
	require.DirExists(t, f.Path("config", "globex"))

	code, stdout, stderr = cli(t, bin, "recover", "--layout-file", f.LayoutFile)
	require.Equal(t, 0, code, stdout+stderr)
	assert.Regexp(t, `(?m)^globex\s+nothing_to_restore\s+logs,service\s`, stdout, "only globex's logs and unit are missing: not backed up, nothing to restore")
	assert.Contains(t, stdout, "globex: nothing of it can come back from backups: logs: backup: false")

	require.NoError(t, os.RemoveAll(f.Path("config", "initech")))
	code, stdout, _ = cli(t, bin, "recover", "initech", "--layout-file", f.LayoutFile, "--confirm", "--json")
	require.Equal(t, 0, code, stdout)
	res := decode(t, stdout)
	assert.Equal(t, true, res["changed"])
	assert.Equal(t, []any{"config"}, res["restored"])
	require.DirExists(t, f.Path("config", "initech"))

	code, _, stderr = cli(t, bin, "recover", "--layout-file", f.LayoutFile, "--force")
	assert.Equal(t, 1, code)
	_ = stderr
}
