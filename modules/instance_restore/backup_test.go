package instancerestore

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// backupFixture is an instance with two nights of backups written by the
// real tools (tar -czf, tar | zstd, pg_dump -Fc with a sidecar), then
// destroyed in part, and the args file of instance_restore source=backup.
type backupFixture struct {
	f      *fleettest.Fleet
	prev   map[string]string
	latest map[string]string
	rows   []string
	args   string
}

func newBackupFixture(t *testing.T, files int, destroy []string, extra map[string]any) *backupFixture {
	t.Helper()
	ctx := context.Background()
	f := fleettest.NewSpec(t, fleettest.Spec{DB: true, Backups: true, Files: files})
	require.NoError(t, f.AddInstance(ctx, "acme"))
	prev, err := f.WriteBackups(ctx, "acme", time.Now().Add(-25*time.Hour))
	require.NoError(t, err)
	latest, err := f.WriteBackups(ctx, "acme", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	x := &backupFixture{f: f, prev: prev, latest: latest, rows: f.Snapshot(t, "acme").Rows}
	for _, c := range destroy {
		if c == "database" {
			require.NoError(t, fleettest.DropDatabasesLike(ctx, f.PG, f.Database("acme")))
			continue
		}
		require.NoError(t, os.RemoveAll(f.Path(c, "acme")))
	}
	params := map[string]any{"layout_file": f.LayoutFile, "name": "acme", "source": "backup"}
	for k, v := range extra {
		params[k] = v
	}
	data, _ := json.Marshal(params)
	x.args = filepath.Join(t.TempDir(), "args")
	require.NoError(t, os.WriteFile(x.args, data, 0o600))
	return x
}

func (x *backupFixture) cmd(lib, crash string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(lib, "instance_restore"), x.args)
	cmd.Env = append(os.Environ(), "FLEETSAFE_SYSTEMD_DIR="+x.f.SystemdDir, "FLEETSAFE_TEST_CRASH_AFTER="+crash)
	return cmd
}

func (x *backupFixture) run(t *testing.T, lib string) map[string]any {
	t.Helper()
	out, err := x.cmd(lib, "").Output()
	var res map[string]any
	require.NoError(t, json.Unmarshal(out, &res), "%v: %s", err, out)
	return res
}

// backupTree is what GNU tar itself extracts of a component from a
// backup: the restore must give back exactly that.
func backupTree(t *testing.T, file, base string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-xpf", file, "-C", dir}
	if strings.HasSuffix(file, ".zst") {
		args = append([]string{"--zstd"}, args...)
	}
	out, err := exec.Command("tar", args...).CombinedOutput()
	require.NoError(t, err, string(out))
	return fleettest.Tree(t, filepath.Join(dir, base))
}

// complete checks that config, data and database are back, identical to
// the backups named, with no staging directory or staging database left.
func (x *backupFixture) complete(t *testing.T, from map[string]string) {
	t.Helper()
	if from["config"] != "" {
		assert.Equal(t, backupTree(t, from["config"], "acme"), fleettest.Tree(t, x.f.Path("config", "acme")), "config")
	}
	if from["data"] != "" {
		assert.Equal(t, backupTree(t, from["data"], "data"), fleettest.Tree(t, x.f.Path("data", "acme")), "data")
	}
	assert.Equal(t, x.rows, x.f.Snapshot(t, "acme").Rows, "database rows")
	x.noStaging(t)
}

func (x *backupFixture) noStaging(t *testing.T) {
	t.Helper()
	for _, c := range []string{"config", "data"} {
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(x.f.Path(c, "acme")), softdelete.StagingPrefix+"*"))
		assert.Empty(t, left, "staging leftovers of %s", c)
	}
	db, err := x.f.PG.Open(context.Background(), "postgres")
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM pg_database WHERE datname LIKE 'fsrestore%' AND datname LIKE '%' || $1 || '%'", x.f.App).Scan(&n))
	assert.Zero(t, n, "staging databases")
}

func recoveryOf(t *testing.T, res map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	list, ok := res["recovery"].([]any)
	require.True(t, ok, "recovery: %v", res)
	for _, c := range list {
		m := c.(map[string]any)
		out[m["component"].(string)] = m
	}
	return out
}

// TestBackup_PartialInstanceThroughModule: the real module binary, check
// mode first (says what, from which backup, how old; touches nothing),
// then the restore of the missing components only; a re-run changes
// nothing; no key Ansible owns is set.
func TestBackup_PartialInstanceThroughModule(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_restore")
	x := newBackupFixture(t, 20, []string{"data", "database"}, map[string]any{"_ansible_check_mode": true})
	cfg := fleettest.Tree(t, x.f.Path("config", "acme"))
	res := x.run(t, lib)
	require.Equal(t, false, res["failed"], res["msg"])
	assert.Equal(t, true, res["changed"], "check mode: something would be restored")
	assert.ElementsMatch(t, []any{"data", "database"}, res["restored"])
	rec := recoveryOf(t, res)
	assert.Equal(t, "would_restore", rec["data"]["status"])
	assert.Equal(t, x.latest["data"], rec["data"]["backup"].(map[string]any)["path"])
	assert.Equal(t, "present", rec["config"]["status"])
	assert.NotNil(t, res["recovery_point"])
	_, err := os.Lstat(x.f.Path("data", "acme"))
	assert.ErrorIs(t, err, os.ErrNotExist, "check mode wrote nothing")
	for _, k := range []string{"skipped", "results", "diff"} {
		assert.NotContains(t, res, k, "Ansible owns %s", k)
	}

	data, _ := json.Marshal(map[string]any{"layout_file": x.f.LayoutFile, "name": "acme", "source": "backup"})
	require.NoError(t, os.WriteFile(x.args, data, 0o600))
	res = x.run(t, lib)
	require.Equal(t, false, res["failed"], res["msg"])
	assert.Equal(t, true, res["changed"])
	assert.Equal(t, "backup", res["source"])
	assert.Equal(t, "backup:"+x.latest["database"], res["sources"].(map[string]any)["database"])
	x.complete(t, map[string]string{"data": x.latest["data"]})
	assert.Equal(t, cfg, fleettest.Tree(t, x.f.Path("config", "acme")), "config, present, untouched")

	res = x.run(t, lib)
	require.Equal(t, false, res["failed"], res["msg"])
	assert.Equal(t, false, res["changed"], "idempotent")

	// archive_dir stays required for the other sources.
	data, _ = json.Marshal(map[string]any{"layout_file": x.f.LayoutFile, "name": "acme"})
	require.NoError(t, os.WriteFile(x.args, data, 0o600))
	res = x.run(t, lib)
	assert.Equal(t, true, res["failed"])
	assert.Contains(t, res["msg"], "archive_dir or archive_store is required unless source is backup")
}

// TestBackup_BrokenNewestFallsBackThroughModule: the newest data backup
// is truncated (its checksum would not help: it has none) and the newest
// dump is rejected by its sidecar; the module restores both from the
// night before, and says which was refused and why.
func TestBackup_BrokenNewestFallsBackThroughModule(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_restore")
	x := newBackupFixture(t, 10, []string{"config", "data", "database"}, nil)
	fi, err := os.Stat(x.latest["data"])
	require.NoError(t, err)
	require.NoError(t, os.Truncate(x.latest["data"], fi.Size()-40))
	require.NoError(t, os.WriteFile(x.latest["database"]+".sha256", []byte(strings.Repeat("0", 64)+"  "+filepath.Base(x.latest["database"])+"\n"), 0o644))
	res := x.run(t, lib)
	require.Equal(t, false, res["failed"], res["msg"])
	rec := recoveryOf(t, res)
	for _, c := range []string{"data", "database"} {
		assert.Equal(t, x.prev[c], rec[c]["backup"].(map[string]any)["path"], c)
		refused := rec[c]["refused"].([]any)
		require.Len(t, refused, 1, c)
		assert.Equal(t, x.latest[c], refused[0].(map[string]any)["path"])
	}
	assert.Equal(t, x.latest["config"], rec["config"]["backup"].(map[string]any)["path"], "config's newest is fine")
	assert.Contains(t, strings.Join(toStrings(res["notes"]), "\n"), "newer backup(s) were refused")
	x.complete(t, map[string]string{"config": x.latest["config"], "data": x.prev["data"]})
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

// crashSteps are the steps of a restore from backups, in order.
var crashSteps = []string{"lock", "select", "stage:config", "place:config", "stage:data", "place:data", "stage:database", "place:database"}

// absentOrComplete: after a crash each component is absent or exactly
// its backup, never half-filled.
func (x *backupFixture) absentOrComplete(t *testing.T) {
	t.Helper()
	for _, c := range []struct{ comp, base string }{{"config", "acme"}, {"data", "data"}} {
		p := x.f.Path(c.comp, "acme")
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		assert.Equal(t, backupTree(t, x.latest[c.comp], c.base), fleettest.Tree(t, p), "%s after a crash", c.comp)
	}
}

// TestBackup_CrashEveryStepConverges kills the module binary with SIGKILL
// after each step; every component is absent or complete, and a re-run
// finishes the restore and leaves no staging behind.
func TestBackup_CrashEveryStepConverges(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_restore")
	for _, step := range crashSteps {
		t.Run(step, func(t *testing.T) {
			t.Parallel() // each subtest has its own fleet, databases and lock keys
			x := newBackupFixture(t, 10, []string{"config", "data", "database"}, nil)
			require.Error(t, x.cmd(lib, step).Run(), "the process was killed")
			x.absentOrComplete(t)
			res := x.run(t, lib)
			require.Equal(t, false, res["failed"], res["msg"])
			x.complete(t, x.latest)
		})
	}
}

// TestBackup_CrashForceConverges: force killed after moving the present
// config aside, before its replacement is put in place; the re-run puts
// the backup in place and records the move aside as done.
func TestBackup_CrashForceConverges(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_restore")
	archives := filepath.Join(t.TempDir(), "archives")
	x := newBackupFixture(t, 5, nil, map[string]any{"force": true, "components": []string{"config"}, "archive_dir": archives})
	require.Error(t, x.cmd(lib, "aside:config").Run(), "the process was killed")
	_, err := os.Lstat(x.f.Path("config", "acme"))
	assert.ErrorIs(t, err, os.ErrNotExist, "moved aside, not yet replaced")
	res := x.run(t, lib)
	require.Equal(t, false, res["failed"], res["msg"])
	assert.Equal(t, backupTree(t, x.latest["config"], "acme"), fleettest.Tree(t, x.f.Path("config", "acme")))
	tombs, err := softdelete.Tombstones(filepath.Join(archives, "acme"))
	require.NoError(t, err)
	require.NotEmpty(t, tombs)
	for _, ts := range tombs {
		assert.NotEqual(t, softdelete.StateQuarantining, ts.State, "tombstone %s left mid-way", ts.Path)
		for _, m := range ts.Components {
			_, err := os.Lstat(m.To)
			assert.NoError(t, err, "the moved-aside config is kept in quarantine")
		}
	}
}

// TestBackup_CrashRandomInstants kills the module at random instants of a
// restore of a larger instance; the re-run converges.
func TestBackup_CrashRandomInstants(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_restore")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			x := newBackupFixture(t, 200, []string{"config", "data", "database"}, nil)
			cmd := x.cmd(lib, "")
			require.NoError(t, cmd.Start())
			delay := time.Duration(rng.IntN(400)) * time.Millisecond
			time.Sleep(delay)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			werr := cmd.Wait()
			t.Logf("SIGKILL after %v: %v", delay, werr)
			x.absentOrComplete(t)
			res := x.run(t, lib)
			require.Equal(t, false, res["failed"], res["msg"])
			x.complete(t, x.latest)
		})
	}
}

// TestBackup_HostileBackupRefusedThroughModule: a crafted config backup
// (a link out of the instance, then a file through it; an entry climbing
// out with ..) newer than the good one: the module refuses it, writes
// nothing outside the staging directory (removed), and restores the older
// good backup; with no good backup left it fails and config stays absent.
func TestBackup_HostileBackupRefusedThroughModule(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_restore")
	x := newBackupFixture(t, 3, []string{"config"}, map[string]any{"components": []string{"config"}})
	outside := t.TempDir()
	stamp := time.Now().Add(-10 * time.Minute).UTC().Format("20060102T150405")
	hostile := filepath.Join(x.f.BackupDir("acme"), "config-"+stamp+".tar.gz")
	script := fmt.Sprintf(`set -e
d=$(mktemp -d); cd "$d"; mkdir acme; ln -s %q acme/esc
tar -czf %q acme
mkdir -p x/acme/esc; echo pwned > x/acme/esc/evil
gzip -dc %q > a.tar; tar -C x -rf a.tar acme/esc/evil; gzip -c a.tar > %q
`, outside, hostile, hostile, hostile)
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	require.NoError(t, err, string(out))
	res := x.run(t, lib)
	require.Equal(t, false, res["failed"], res["msg"])
	rec := recoveryOf(t, res)
	assert.Equal(t, x.latest["config"], rec["config"]["backup"].(map[string]any)["path"], "the older good backup")
	refused := rec["config"]["refused"].([]any)
	require.Len(t, refused, 1)
	assert.Equal(t, hostile, refused[0].(map[string]any)["path"])
	assert.Contains(t, refused[0].(map[string]any)["reason"], "nothing is written through it")
	ents, _ := os.ReadDir(outside)
	assert.Empty(t, ents, "nothing written through the link")
	assert.Equal(t, backupTree(t, x.latest["config"], "acme"), fleettest.Tree(t, x.f.Path("config", "acme")))
	x.noStaging(t)

	// No good backup left: failed, config absent, nothing outside.
	require.NoError(t, os.RemoveAll(x.f.Path("config", "acme")))
	for _, p := range []string{x.latest["config"], x.prev["config"]} {
		require.NoError(t, os.Remove(p))
	}
	res = x.run(t, lib)
	assert.Equal(t, true, res["failed"])
	assert.Contains(t, res["msg"], "config")
	_, err = os.Lstat(x.f.Path("config", "acme"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	ents, _ = os.ReadDir(outside)
	assert.Empty(t, ents)
	x.noStaging(t)
}

// TestBackup_TwoRunsAtOnce: two module processes restore the same
// instance from backups at once; the host lock lets one act, the other is
// refused (or, started after, finds everything back); the instance ends
// complete, with no staging left.
func TestBackup_TwoRunsAtOnce(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_restore")
	x := newBackupFixture(t, 100, []string{"config", "data", "database"}, nil)
	type outcome struct {
		out []byte
		err error
	}
	done := make(chan outcome, 2)
	for range 2 {
		go func() {
			out, err := x.cmd(lib, "").Output()
			done <- outcome{out, err}
		}()
	}
	acted := 0
	for range 2 {
		o := <-done
		var res map[string]any
		require.NoError(t, json.Unmarshal(o.out, &res), "%v: %s", o.err, o.out)
		switch {
		case res["failed"] == true:
			assert.Contains(t, res["msg"], "another fleetsafe run holds the lock")
			assert.Equal(t, false, res["changed"], "the refused run changed nothing")
		case res["changed"] == true:
			acted++
		}
	}
	assert.Equal(t, 1, acted, "exactly one run restored the instance")
	x.complete(t, x.latest)
}
