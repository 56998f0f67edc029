package backupverify

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

func backedUp(t *testing.T, names ...string) (*fleettest.Fleet, map[string]map[string]string) {
	f := fleettest.NewSpec(t, fleettest.Spec{Names: names, DB: true, Backups: true})
	latest := map[string]map[string]string{}
	for _, n := range names {
		var err error
		latest[n], err = f.WriteBackups(context.Background(), n, time.Now().Add(-time.Hour))
		require.NoError(t, err)
	}
	return f, latest
}

func call(t *testing.T, f *fleettest.Fleet, kv ...any) map[string]any {
	t.Helper()
	return f.CallModule(t, Module, append([]any{"state_file", filepath.Join(f.Root, "state.json")}, kv...)...)
}

func TestBackupVerify_OK(t *testing.T) {
	f, _ := backedUp(t, "acme", "globex")
	metrics := filepath.Join(t.TempDir(), "m.prom")
	out := call(t, f, "restore_test", "1", "metrics_file", metrics, "archive_dir", filepath.Join(t.TempDir(), "archives"))
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, false, out["changed"])
	assert.Equal(t, map[string]any{"instances": 2.0, "ok": 2.0, "warning": 0.0, "failed": 0.0}, out["summary"])
	assert.Equal(t, "2 instances: 2 ok, 0 warning, 0 failed", out["msg"])
	_, err := os.Stat(metrics)
	assert.NoError(t, err)
}

func TestBackupVerify_FailsNamingInstanceAndCheck(t *testing.T) {
	f, latest := backedUp(t, "acme", "globex")
	require.NoError(t, os.Truncate(latest["globex"]["database"], 2000))
	out := call(t, f)
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], "globex (database/checksum failed")
	assert.Contains(t, out["msg"], "database/format failed")
	assert.NotContains(t, out["msg"], "acme (")
	assert.Equal(t, 1.0, out["summary"].(map[string]any)["failed"], "results are kept on failure")

	out = call(t, f, "fail_on", "never")
	assert.Equal(t, false, out["failed"])
}

func TestBackupVerify_CheckModeRestoresNothing(t *testing.T) {
	f, _ := backedUp(t, "acme")
	metrics := filepath.Join(t.TempDir(), "m.prom")
	out := call(t, f, "restore_test", 1, "metrics_file", metrics, "_ansible_check_mode", true)
	require.Equal(t, false, out["failed"], out["msg"])
	_, err := os.Stat(metrics)
	assert.True(t, os.IsNotExist(err))
}

func TestBackupVerify_MalformedRuleIsLoud(t *testing.T) {
	f, _ := backedUp(t, "acme")
	bad := filepath.Join(t.TempDir(), "bad.yml")
	data, err := os.ReadFile(f.LayoutFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, append(data, []byte("  - component: data\n    path: /x/{name}/*.tar\n    format: tar\n    max_age: 26hours\n")...), 0o644))
	out := call(t, f, "layout_file", bad)
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], bad+" line")
	assert.Contains(t, out["msg"], "max_age")
	assert.Contains(t, out["msg"], `"26hours"`)
}

// TestBackupVerify_MetricsRewrittenWhenRunFails: a good run writes
// fleetsafe_backup_verify_success 1 with every status; a run that fails
// before checking (a wrong password, an unreadable layout) rewrites the
// file with success 0 and drops the statuses of the earlier run, which
// would keep the alerts green.
func TestBackupVerify_MetricsRewrittenWhenRunFails(t *testing.T) {
	f, _ := backedUp(t, "acme")
	metrics := filepath.Join(t.TempDir(), "m.prom")
	out := call(t, f, "metrics_file", metrics)
	require.Equal(t, false, out["failed"], out["msg"])
	text, err := os.ReadFile(metrics)
	require.NoError(t, err)
	app := `app="` + f.App + `"`
	assert.Contains(t, string(text), "fleetsafe_backup_verify_success{"+app+"} 1\n")
	assert.Contains(t, string(text), "fleetsafe_backup_status{")

	out = call(t, f, "metrics_file", metrics, "login_host", "127.0.0.1", "login_user", "postgres", "login_password", "wrong-S3cret")
	require.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], "password authentication failed")
	assert.NotContains(t, out["msg"], "wrong-S3cret")
	text, err = os.ReadFile(metrics)
	require.NoError(t, err)
	assert.Contains(t, string(text), "fleetsafe_backup_verify_success{"+app+"} 0\n")
	assert.NotContains(t, string(text), "fleetsafe_backup_status{", "no status survives from the earlier run")
	assert.NotContains(t, string(text), "fleetsafe_backup_newest_timestamp_seconds{")

	// An unreadable layout: the app is not known, the run still says it failed.
	out = call(t, f, "metrics_file", metrics, "layout_file", filepath.Join(t.TempDir(), "missing.yml"))
	require.Equal(t, true, out["failed"])
	text, err = os.ReadFile(metrics)
	require.NoError(t, err)
	assert.Contains(t, string(text), `fleetsafe_backup_verify_success{app=""} 0`+"\n")
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(metrics), ".*"))
	assert.Empty(t, leftovers, "no temporary file left")
}

// TestBackupVerify_QuarantineMetrics: real soft deletions under
// archive_dir show in the metrics file of their app, with their purge
// time; another app's deletion in the same archive_dir does not (each
// app's file would otherwise repeat it, and node_exporter rejects a
// series seen twice); a tombstone that cannot be read fails the task,
// naming it, with fleetsafe_quarantine_read_success 0 and every other
// deletion still listed; a run that fails before checking still shows
// the quarantine.
func TestBackupVerify_QuarantineMetrics(t *testing.T) {
	f, _ := backedUp(t, "acme", "globex", "initech")
	archives := filepath.Join(t.TempDir(), "archives")
	ctx := context.Background()
	due, err := softdelete.Delete(ctx, f.Layout, softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "customer left",
		RequestedBy: "alice", RetentionDays: 0, Options: f.Options()})
	require.NoError(t, err)
	later, err := softdelete.Delete(ctx, f.Layout, softdelete.Request{Name: "globex", ArchiveDir: archives, Reason: "duplicate",
		RequestedBy: "bob", RetentionDays: 30, Options: f.Options()})
	require.NoError(t, err)
	// Another app's deletion in the same archive_dir.
	other := *readTombstone(t, later.Tombstone.Path)
	other.App, other.Instance, other.ID = "otherapp", "hooli", "20260101T000000Z-other"
	require.NoError(t, os.MkdirAll(filepath.Join(archives, "hooli"), 0o700))
	writeJSON(t, filepath.Join(archives, "hooli", other.ID+".tombstone.json"), other)

	metrics := filepath.Join(t.TempDir(), "m.prom")
	out := call(t, f, "metrics_file", metrics, "archive_dir", archives)
	require.Equal(t, false, out["failed"], out["msg"])
	text := readText(t, metrics)
	app := `app="` + f.App + `"`
	assert.Contains(t, text, "fleetsafe_quarantine_read_success{"+app+"} 1\n")
	assert.Contains(t, text, "fleetsafe_quarantine_deletions{"+app+"} 2\n")
	assert.Contains(t, text, "fleetsafe_quarantine_purges_due{"+app+"} 1\n", "retention 0: due at once")
	assert.Contains(t, text, fmt.Sprintf("fleetsafe_quarantine_purge_after_timestamp_seconds{%s,name=\"acme\",tombstone=\"%s\",state=\"quarantined\"} %d\n",
		app, due.Tombstone.ID, due.Tombstone.PurgeAfter.Unix()))
	assert.Contains(t, text, fmt.Sprintf("fleetsafe_quarantine_purge_after_timestamp_seconds{%s,name=\"globex\",tombstone=\"%s\",state=\"quarantined\"} %d\n",
		app, later.Tombstone.ID, later.Tombstone.PurgeAfter.Unix()))
	assert.Contains(t, text, fmt.Sprintf("fleetsafe_quarantine_deleted_timestamp_seconds{%s,name=\"globex\",tombstone=\"%s\",state=\"quarantined\"} %d\n",
		app, later.Tombstone.ID, later.Tombstone.DeletedAt.Unix()))
	assert.NotContains(t, text, "hooli")
	assert.NotContains(t, text, "otherapp")

	// A tombstone that does not parse.
	bad := filepath.Join(archives, "initech", "20260101T000000Z-bad.tombstone.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(bad), 0o700))
	require.NoError(t, os.WriteFile(bad, []byte(`{"id": "x", "instance": "initech",`), 0o600))
	out = call(t, f, "metrics_file", metrics, "archive_dir", archives)
	require.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], bad)
	assert.Contains(t, out["msg"], "the backups were checked (1 instances: 1 ok", "the backups were checked all the same")
	text = readText(t, metrics)
	assert.Contains(t, text, "fleetsafe_quarantine_read_success{"+app+"} 0\n")
	assert.Contains(t, text, "fleetsafe_quarantine_deletions{"+app+"} 2\n", "the readable deletions are still listed")
	assert.Contains(t, text, "fleetsafe_backup_verify_success{"+app+"} 1\n")
	require.NoError(t, os.Remove(bad))

	// A run that fails before checking: no backup status, the quarantine still.
	out = call(t, f, "metrics_file", metrics, "archive_dir", archives, "login_host", "127.0.0.1", "login_user", "postgres", "login_password", "wrong-S3cret")
	require.Equal(t, true, out["failed"])
	text = readText(t, metrics)
	assert.Contains(t, text, "fleetsafe_backup_verify_success{"+app+"} 0\n")
	assert.NotContains(t, text, "fleetsafe_backup_status{")
	assert.Contains(t, text, "fleetsafe_quarantine_deletions{"+app+"} 2\n")

	// Restored: no longer in quarantine, no longer in the metrics.
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "globex", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	out = call(t, f, "metrics_file", metrics, "archive_dir", archives)
	require.Equal(t, false, out["failed"], out["msg"])
	text = readText(t, metrics)
	assert.Contains(t, text, "fleetsafe_quarantine_deletions{"+app+"} 1\n")
	assert.NotContains(t, text, `name="globex",tombstone`)
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func readTombstone(t *testing.T, path string) *softdelete.Tombstone {
	t.Helper()
	ts, err := softdelete.ReadTombstone(path)
	require.NoError(t, err)
	return ts
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// TestBackupVerify_DrillRotatesAndRecordsSuccess: drill=true drills one
// instance per run, in turn, through the real module; the metric gives
// each drilled instance its last success; a newest dump that pg_restore
// cannot read fails the task with the drill's finding, that instance's
// metric keeping its earlier success.
func TestBackupVerify_DrillRotatesAndRecordsSuccess(t *testing.T) {
	f, _ := backedUp(t, "acme", "globex")
	metrics := filepath.Join(t.TempDir(), "m.prom")
	out := call(t, f, "drill", true, "metrics_file", metrics)
	require.Equal(t, false, out["failed"], out["msg"])
	d := out["drill"].(map[string]any)
	assert.Equal(t, "acme", d["name"])
	assert.Equal(t, true, d["ok"])
	out = call(t, f, "drill", true, "metrics_file", metrics)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, "globex", out["drill"].(map[string]any)["name"])
	prom, err := os.ReadFile(metrics)
	require.NoError(t, err)
	assert.Regexp(t, `fleetsafe_backup_drill_last_success_timestamp_seconds\{app="[^"]+",name="acme"\} \d+`, string(prom))
	assert.Regexp(t, `fleetsafe_backup_drill_last_success_timestamp_seconds\{app="[^"]+",name="globex"\} \d+`, string(prom))
	acmeLine := regexpLine(t, string(prom), `name="acme"} `)

	// Check mode drills nothing and keeps the rotation.
	out = call(t, f, "drill", true, "_ansible_check_mode", true)
	assert.Nil(t, out["drill"])

	// acme's newest dump now passes every check but pg_restore rejects it
	// (a CHECK whose function reads a table restored after it).
	db, err := f.PG.Tenant().Open(context.Background(), f.Database("acme")) // the application's session
	require.NoError(t, err)
	for _, q := range []string{
		`CREATE TABLE zz_ref (n int)`,
		`INSERT INTO zz_ref SELECT generate_series(1, 10)`,
		`CREATE FUNCTION below_ref(int) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT $1 < (SELECT count(*) FROM public.zz_ref)'`,
		`CREATE TABLE aa_checked (x int CHECK (public.below_ref(x)))`,
		`INSERT INTO aa_checked VALUES (5)`,
	} {
		_, err := db.ExecContext(context.Background(), q)
		require.NoError(t, err, q)
	}
	db.Close()
	_, err = f.WriteBackups(context.Background(), "acme", time.Now().Add(-30*time.Minute))
	require.NoError(t, err)
	out = call(t, f, "drill", true, "metrics_file", metrics)
	require.Equal(t, true, out["failed"], "the drill's finding fails the task")
	assert.Contains(t, out["msg"], "restore drill of acme failed")
	assert.Contains(t, out["msg"], "pg_restore")
	prom, err = os.ReadFile(metrics)
	require.NoError(t, err)
	assert.Equal(t, acmeLine, regexpLine(t, string(prom), `name="acme"} `), "the last success is kept, not advanced")
}

func regexpLine(t *testing.T, text, sub string) string {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "fleetsafe_backup_drill_last_success_timestamp_seconds") && strings.Contains(l, sub) {
			return l
		}
	}
	t.Fatalf("no drill metric line with %s in\n%s", sub, text)
	return ""
}
