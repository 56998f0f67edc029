package recovery_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	_ "github.com/fleetsafe/fleetsafe/pkg/kinds"
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// fixture is one instance with backups written by the real tools: two
// nights (25 h and 1 h ago) of config (tar -czf), data (tar | zstd) and
// database (pg_dump -Fc with a sha256sum sidecar).
type fixture struct {
	f      *fleettest.Fleet
	prev   map[string]string
	latest map[string]string
	want   fleettest.Snapshot
}

// ageSlack (seconds) is how far a backup's reported age may be from the
// age it was given when the fixture wrote it: the time the test takes,
// generous for a loaded machine, and far below the 24 h between the two
// nights it tells apart.
const ageSlack = 1800

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := fleettest.NewSpec(t, fleettest.Spec{DB: true, Backups: true, Files: 8})
	require.NoError(t, f.AddInstance(ctx, "acme"))
	prev, err := f.WriteBackups(ctx, "acme", time.Now().Add(-25*time.Hour))
	require.NoError(t, err)
	latest, err := f.WriteBackups(ctx, "acme", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	return &fixture{f: f, prev: prev, latest: latest, want: f.Snapshot(t, "acme")}
}

// destroy removes components of acme the way an old playbook would.
func (x *fixture) destroy(t *testing.T, comps ...string) {
	t.Helper()
	for _, c := range comps {
		if c == "database" {
			require.NoError(t, fleettest.DropDatabasesLike(context.Background(), x.f.PG, x.f.Database("acme")))
			continue
		}
		require.NoError(t, os.RemoveAll(x.f.Path(c, "acme")))
	}
}

func (x *fixture) req() recovery.Request {
	return recovery.Request{Name: "acme", Options: x.f.Options()}
}

// tarTree extracts a tar backup with GNU tar itself (the by-hand
// pipeline) and returns the tree of the component in it: what the
// restore must give back, byte for byte.
func tarTree(t *testing.T, backup, base string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-xpf", backup, "-C", dir}
	if strings.HasSuffix(backup, ".zst") {
		args = append([]string{"--zstd"}, args...)
	}
	out, err := exec.Command("tar", args...).CombinedOutput()
	require.NoError(t, err, string(out))
	return fleettest.Tree(t, filepath.Join(dir, base))
}

func byComponent(res *recovery.Result) map[string]recovery.ComponentResult {
	out := map[string]recovery.ComponentResult{}
	for _, c := range res.Components {
		out[c.Component] = c
	}
	return out
}

// TestRestore_PartialInstanceGetsOnlyMissing: data and database were
// destroyed, config was not; only the two come back, from the newest
// backups, identical to them; config is left as it is; a second run
// changes nothing.
func TestRestore_PartialInstanceGetsOnlyMissing(t *testing.T) {
	x := newFixture(t)
	cfgBefore := fleettest.Tree(t, x.f.Path("config", "acme"))
	x.destroy(t, "data", "database")
	res, err := recovery.Restore(context.Background(), x.f.Layout, x.req())
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.ElementsMatch(t, []string{"data", "database"}, res.Restored)
	cs := byComponent(res)
	assert.Equal(t, recovery.StatusPresent, cs["config"].Status)
	assert.Equal(t, recovery.StatusPresent, cs["logs"].Status)
	require.NotNil(t, cs["data"].Backup)
	assert.Equal(t, x.latest["data"], cs["data"].Backup.Path)
	assert.Equal(t, x.latest["database"], cs["database"].Backup.Path)
	// The backups are dated when the fixture is made and their age read
	// at the restore: the tolerance is the test's running time on a loaded
	// machine (half an hour, far from the 24 h between the two nights).
	assert.InDelta(t, 3600, cs["data"].Backup.AgeSeconds, ageSlack, "age is the recovery point")
	assert.Equal(t, "top", cs["data"].Backup.Layout)
	assert.Empty(t, cs["data"].Refused)
	require.NotNil(t, res.RecoveryPoint)

	assert.Equal(t, tarTree(t, x.latest["data"], "data"), fleettest.Tree(t, x.f.Path("data", "acme")), "data byte for byte as the backup holds it")
	assert.Equal(t, cfgBefore, fleettest.Tree(t, x.f.Path("config", "acme")), "config untouched")
	assert.Equal(t, x.want.Rows, x.f.Snapshot(t, "acme").Rows, "database rows")
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(x.f.Path("data", "acme")), softdelete.StagingPrefix+"*"))
	assert.Empty(t, left, "no staging directory left")

	again, err := recovery.Restore(context.Background(), x.f.Layout, x.req())
	require.NoError(t, err)
	assert.False(t, again.Changed, "a complete instance changes nothing")
	assert.Empty(t, again.Restored)
}

// TestRestore_GoneInstance: every component gone (the parent directories
// too); all come back, the parents are created and said so.
func TestRestore_GoneInstance(t *testing.T) {
	x := newFixture(t)
	x.destroy(t, "config", "data", "database")
	require.NoError(t, os.RemoveAll(filepath.Dir(x.f.Path("data", "acme"))))
	res, err := recovery.Restore(context.Background(), x.f.Layout, x.req())
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"config", "data", "database"}, res.Restored)
	assert.Equal(t, tarTree(t, x.latest["config"], "acme"), fleettest.Tree(t, x.f.Path("config", "acme")))
	assert.Equal(t, tarTree(t, x.latest["data"], "data"), fleettest.Tree(t, x.f.Path("data", "acme")))
	assert.Equal(t, x.want.Rows, x.f.Snapshot(t, "acme").Rows)
	assert.Contains(t, strings.Join(res.Notes, "\n"), "created the parent directory")
}

// TestRestore_BrokenNewestFallsBack: the newest data backup is truncated
// and the newest dump does not match its checksum; both fall back to the
// night before, and say which backup was refused and why.
func TestRestore_BrokenNewestFallsBack(t *testing.T) {
	x := newFixture(t)
	fi, err := os.Stat(x.latest["data"])
	require.NoError(t, err)
	require.NoError(t, os.Truncate(x.latest["data"], fi.Size()/2))
	mt := fi.ModTime()
	require.NoError(t, os.Chtimes(x.latest["data"], mt, mt))
	// One flipped byte in the dump, its sidecar as it was.
	data, err := os.ReadFile(x.latest["database"])
	require.NoError(t, err)
	data[len(data)/2] ^= 0xff
	require.NoError(t, os.WriteFile(x.latest["database"], data, 0o600))
	require.NoError(t, os.Chtimes(x.latest["database"], mt, mt))
	x.destroy(t, "data", "database")

	res, err := recovery.Restore(context.Background(), x.f.Layout, x.req())
	require.NoError(t, err)
	cs := byComponent(res)
	for _, c := range []string{"data", "database"} {
		require.Equal(t, recovery.StatusRestored, cs[c].Status, c)
		assert.Equal(t, x.prev[c], cs[c].Backup.Path, "%s falls back to the night before", c)
		require.Len(t, cs[c].Refused, 1, c)
		assert.Equal(t, x.latest[c], cs[c].Refused[0].Path)
		assert.InDelta(t, 25*3600, cs[c].Backup.AgeSeconds, ageSlack)
	}
	assert.Contains(t, cs["data"].Refused[0].Reason, "format")
	assert.Contains(t, cs["database"].Refused[0].Reason, "checksum")
	assert.Equal(t, tarTree(t, x.prev["data"], "data"), fleettest.Tree(t, x.f.Path("data", "acme")))
	assert.Contains(t, strings.Join(res.Notes, "\n"), "newer backup(s) were refused")
	require.NotNil(t, res.RecoveryPoint)
	assert.WithinDuration(t, time.Now().Add(-25*time.Hour), *res.RecoveryPoint, ageSlack*time.Second)
}

// TestRestore_NoGoodBackupFailsAndWritesNothing: every data backup is
// broken: the component is not restored, the failure names each refused
// backup, and nothing is left at its place or in staging; the database
// still comes back.
func TestRestore_NoGoodBackupFailsAndWritesNothing(t *testing.T) {
	x := newFixture(t)
	for _, p := range []string{x.prev["data"], x.latest["data"]} {
		require.NoError(t, os.WriteFile(p, []byte("not a zstd stream"), 0o600))
	}
	x.destroy(t, "data", "database")
	res, err := recovery.Restore(context.Background(), x.f.Layout, x.req())
	var fe *recovery.FailedError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, []string{"data"}, fe.Failed)
	cs := byComponent(res)
	assert.Equal(t, recovery.StatusNoGoodBackup, cs["data"].Status)
	assert.Len(t, cs["data"].Refused, 2)
	assert.Equal(t, recovery.StatusRestored, cs["database"].Status, "one component's failure does not stop the others")
	_, serr := os.Lstat(x.f.Path("data", "acme"))
	assert.ErrorIs(t, serr, os.ErrNotExist)
}

// TestRestore_CheckModeTouchesNothing says what would be restored from
// which backup, and changes nothing.
func TestRestore_CheckModeTouchesNothing(t *testing.T) {
	x := newFixture(t)
	x.destroy(t, "data", "database")
	req := x.req()
	req.CheckMode = true
	res, err := recovery.Restore(context.Background(), x.f.Layout, req)
	require.NoError(t, err)
	assert.False(t, res.Changed)
	cs := byComponent(res)
	assert.Equal(t, recovery.StatusWouldRestore, cs["data"].Status)
	assert.Equal(t, x.latest["data"], cs["data"].Backup.Path)
	assert.Equal(t, recovery.StatusWouldRestore, cs["database"].Status)
	_, serr := os.Lstat(x.f.Path("data", "acme"))
	assert.ErrorIs(t, serr, os.ErrNotExist)
	inst, err := x.f.Layout.Resolve(context.Background(), "acme", x.f.Options())
	require.NoError(t, err)
	st, _ := inst.State("database")
	assert.False(t, st.Present)
}

// TestRestore_ComponentsNarrows restores only the component named.
func TestRestore_ComponentsNarrows(t *testing.T) {
	x := newFixture(t)
	x.destroy(t, "data", "database")
	req := x.req()
	req.Components = []string{"data"}
	res, err := recovery.Restore(context.Background(), x.f.Layout, req)
	require.NoError(t, err)
	assert.Equal(t, []string{"data"}, res.Restored)
	inst, err := x.f.Layout.Resolve(context.Background(), "acme", x.f.Options())
	require.NoError(t, err)
	st, _ := inst.State("database")
	assert.False(t, st.Present, "database not asked for")
}

// TestRestore_ForceReplacesPresent: force stages the backup, moves the
// present component aside into quarantine (recorded in a tombstone), and
// puts the backup's content in place.
func TestRestore_ForceReplacesPresent(t *testing.T) {
	x := newFixture(t)
	cfg := x.f.Path("config", "acme")
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "development.ini"), []byte("damaged\n"), 0o640))
	archives := filepath.Join(t.TempDir(), "archives")
	req := x.req()
	req.Components = []string{"config"}
	req.Force = true
	_, err := recovery.Restore(context.Background(), x.f.Layout, req)
	var re *recovery.RefusedError
	require.ErrorAs(t, err, &re, "force without archive_dir")
	req.ArchiveDir = archives
	res, err := recovery.Restore(context.Background(), x.f.Layout, req)
	require.NoError(t, err)
	cs := byComponent(res)
	require.Equal(t, recovery.StatusRestored, cs["config"].Status)
	require.NotEmpty(t, cs["config"].Replaced)
	got, err := os.ReadFile(filepath.Join(cs["config"].Replaced, "development.ini"))
	require.NoError(t, err)
	assert.Equal(t, "damaged\n", string(got), "the replaced component is kept in quarantine")
	assert.Equal(t, tarTree(t, x.latest["config"], "acme"), fleettest.Tree(t, cfg))
	tombs, err := softdelete.Tombstones(filepath.Join(archives, "acme"))
	require.NoError(t, err)
	require.Len(t, tombs, 1)
	assert.Equal(t, softdelete.StateQuarantined, tombs[0].State)
}

// relayout rewrites the fleet's layout file (old -> new) and loads it.
func relayout(t *testing.T, f *fleettest.Fleet, pairs ...string) *instance.Layout {
	t.Helper()
	data, err := os.ReadFile(f.LayoutFile)
	require.NoError(t, err)
	text := string(data)
	for i := 0; i < len(pairs); i += 2 {
		require.Contains(t, text, pairs[i])
		text = strings.Replace(text, pairs[i], pairs[i+1], 1)
	}
	require.NoError(t, os.WriteFile(f.LayoutFile, []byte(text), 0o644))
	l, err := instance.LoadLayoutFile(f.LayoutFile)
	require.NoError(t, err)
	return l
}

// TestRestore_ZipAndPlainDumps: config from a zip written by zip -r,
// the database from a plain dump compressed with gzip (pg_dump | gzip).
func TestRestore_ZipAndPlainDumps(t *testing.T) {
	x := newFixture(t)
	dir := x.f.BackupDir("acme")
	cfg := x.f.Path("config", "acme")
	stamp := time.Now().Add(-2 * time.Hour).UTC().Format("20060102T150405")
	zipFile := filepath.Join(dir, "config-"+stamp+".zip")
	cmd := exec.Command("zip", "-qry", zipFile, filepath.Base(cfg))
	cmd.Dir = filepath.Dir(cfg)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	sqlFile := filepath.Join(dir, "db-"+stamp+".sql.gz")
	out, err = exec.Command("sh", "-c", "pg_dump --dbname=\"$0\" | gzip > \"$1\"", x.f.Database("acme"), sqlFile).CombinedOutput()
	require.NoError(t, err, string(out))
	l := relayout(t, x.f, "config-*.tar.gz\n    format: tar_gz", "config-*.zip\n    format: zip",
		"db-*.dump\n    format: pg_custom", "db-*.sql.gz\n    format: pg_plain", "    checksum: sha256_sidecar\n", "")
	x.destroy(t, "config", "database")
	res, err := recovery.Restore(context.Background(), l, x.req())
	require.NoError(t, err)
	cs := byComponent(res)
	assert.Equal(t, zipFile, cs["config"].Backup.Path)
	assert.Equal(t, sqlFile, cs["database"].Backup.Path)
	assert.Equal(t, x.want.Rows, x.f.Snapshot(t, "acme").Rows)
	got := fleettest.Tree(t, cfg)
	want := x.want.Trees["config"]
	assert.Equal(t, len(want), len(got))
	for name, desc := range want {
		// zip keeps modes, contents, link targets and mtimes to the
		// second; owners come from the parent directory.
		if strings.Contains(desc, " -> ") {
			assert.Contains(t, got[name], strings.Split(desc, " -> ")[1][:strings.Index(strings.Split(desc, " -> ")[1], " ")], name)
			continue
		}
		if strings.HasPrefix(desc, "-") {
			assert.Equal(t, strings.Fields(desc)[2], strings.Fields(got[name])[2], "content of %s", name)
		}
	}
}

// TestRestore_NotRestorableRulesAreReported: format any and a missing
// rule are reported, never guessed.
func TestRestore_NotRestorableRulesAreReported(t *testing.T) {
	x := newFixture(t)
	l := relayout(t, x.f, "config-*.tar.gz\n    format: tar_gz", "config-*.tar.gz\n    format: any")
	x.destroy(t, "config", "logs")
	res, err := recovery.Restore(context.Background(), l, x.req())
	var fe *recovery.FailedError
	require.ErrorAs(t, err, &fe, "a required component stays absent: the task fails")
	assert.Equal(t, []string{"config"}, fe.Failed, "logs (optional, backup: false) is no failure")
	cs := byComponent(res)
	assert.Equal(t, recovery.StatusNotRestorable, cs["config"].Status)
	assert.Contains(t, cs["config"].Reason, "format any")
	assert.Equal(t, recovery.StatusNotRestorable, cs["logs"].Status)
	assert.Contains(t, cs["logs"].Reason, "backup: false")
	assert.False(t, res.Changed)
	_, serr := os.Lstat(x.f.Path("config", "acme"))
	assert.ErrorIs(t, serr, os.ErrNotExist)
}

// TestRestore_RefusedWhileAnotherRunHoldsTheInstance: the host-wide lock
// soft delete and restore take; a restore from backups while another run
// holds it is refused and changes nothing.
func TestRestore_RefusedWhileAnotherRunHoldsTheInstance(t *testing.T) {
	x := newFixture(t)
	x.destroy(t, "data")
	unlock, err := softdelete.LockInstance(x.f.Layout, "acme")
	require.NoError(t, err)
	_, err = recovery.Restore(context.Background(), x.f.Layout, x.req())
	unlock()
	var re *recovery.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Reason, "another fleetsafe run holds the lock")
	_, serr := os.Lstat(x.f.Path("data", "acme"))
	assert.ErrorIs(t, serr, os.ErrNotExist)
	res, err := recovery.Restore(context.Background(), x.f.Layout, x.req())
	require.NoError(t, err)
	assert.Equal(t, []string{"data"}, res.Restored)
}

// TestRestore_PlainDumpZstd: a plain dump compressed with zstd
// (pg_dump | zstd) restores the database.
func TestRestore_PlainDumpZstd(t *testing.T) {
	x := newFixture(t)
	dir := x.f.BackupDir("acme")
	sqlFile := filepath.Join(dir, "db-"+time.Now().Add(-time.Hour).UTC().Format("20060102T150405")+".sql.zst")
	out, err := exec.Command("sh", "-c", "pg_dump --dbname=\"$0\" | zstd -q -o \"$1\"", x.f.Database("acme"), sqlFile).CombinedOutput()
	require.NoError(t, err, string(out))
	l := relayout(t, x.f, "db-*.dump\n    format: pg_custom", "db-*.sql.zst\n    format: pg_plain", "    checksum: sha256_sidecar\n", "")
	x.destroy(t, "database")
	res, err := recovery.Restore(context.Background(), l, x.req())
	require.NoError(t, err)
	assert.Equal(t, sqlFile, byComponent(res)["database"].Backup.Path)
	assert.Equal(t, x.want.Rows, x.f.Snapshot(t, "acme").Rows)
}

// TestRestore_EmptiedDirectoryIsReplacedWithArchiveDir: a rm of the data
// directory's content leaves it empty (a placeholder). Without
// archive_dir it is reported, not touched; with it, it is moved aside
// into quarantine and replaced by its backup, which is newer than the
// directory; the inventory lists it. A directory made again after that
// backup (rm -rf then mkdir, or a new tenant of the name) is not
// replaced without force (FINDINGS-3 #12).
func TestRestore_EmptiedDirectoryIsReplacedWithArchiveDir(t *testing.T) {
	x := newFixture(t)
	data := x.f.Path("data", "acme")
	// Tonight's backup, taken after the directory was made.
	latest, err := x.f.WriteBackups(context.Background(), "acme", time.Now())
	require.NoError(t, err)
	x.latest = latest
	ents, err := os.ReadDir(data)
	require.NoError(t, err)
	for _, e := range ents {
		require.NoError(t, os.RemoveAll(filepath.Join(data, e.Name())))
	}
	archives := filepath.Join(t.TempDir(), "archives")

	rep, err := recovery.Inventory(context.Background(), x.f.Layout, recovery.DamageOptions{ArchiveDir: archives, Options: x.f.Options()})
	require.NoError(t, err)
	require.Len(t, rep.Damaged, 1)
	assert.Equal(t, []string{"data"}, rep.Damaged[0].Missing)

	res, err := recovery.Restore(context.Background(), x.f.Layout, x.req())
	require.NoError(t, err)
	cs := byComponent(res)
	assert.Equal(t, recovery.StatusPresent, cs["data"].Status)
	assert.Contains(t, cs["data"].Reason, "placeholder")
	assert.False(t, res.Changed)

	req := x.req()
	req.ArchiveDir = archives
	res, err = recovery.Restore(context.Background(), x.f.Layout, req)
	require.NoError(t, err)
	cs = byComponent(res)
	require.Equal(t, recovery.StatusRestored, cs["data"].Status)
	assert.NotEmpty(t, cs["data"].Replaced)
	assert.Equal(t, tarTree(t, x.latest["data"], "data"), fleettest.Tree(t, data))

	// Made again after every backup: a new tenant's, left as it is.
	require.NoError(t, os.RemoveAll(data))
	require.NoError(t, os.Mkdir(data, 0o755))
	res, err = recovery.Restore(context.Background(), x.f.Layout, req)
	require.NoError(t, err)
	cs = byComponent(res)
	assert.Equal(t, recovery.StatusPresent, cs["data"].Status)
	assert.Contains(t, cs["data"].Reason, "new tenant")
	assert.False(t, res.Changed)
	ents, err = os.ReadDir(data)
	require.NoError(t, err)
	assert.Empty(t, ents)
}

// TestRestore_DumpThatPgRestoreRejectsFallsBack: the newest dump passes
// every check (checksum, structure to its last data block, right
// database, data) but pg_restore rejects it (a CHECK constraint whose
// function reads a table restored after it); the restore drops the
// half-restored staging database, refuses that dump naming pg_restore's
// error, and restores the previous good one.
func TestRestore_DumpThatPgRestoreRejectsFallsBack(t *testing.T) {
	ctx := context.Background()
	x := newFixture(t)
	db, err := x.f.PG.Tenant().Open(ctx, x.f.Database("acme")) // the application's session
	require.NoError(t, err)
	for _, q := range []string{
		`CREATE TABLE zz_ref (n int)`,
		`INSERT INTO zz_ref SELECT generate_series(1, 10)`,
		`CREATE FUNCTION below_ref(int) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT $1 < (SELECT count(*) FROM public.zz_ref)'`,
		`CREATE TABLE aa_checked (x int CHECK (public.below_ref(x)))`,
		`INSERT INTO aa_checked VALUES (5)`,
	} {
		_, err := db.ExecContext(ctx, q)
		require.NoError(t, err, q)
	}
	db.Close()
	bad := filepath.Join(x.f.BackupDir("acme"), "db-"+time.Now().Add(-10*time.Minute).UTC().Format("20060102T150405")+".dump")
	out, err := exec.Command("sh", "-c", `pg_dump --format=custom --file="$1" --dbname="$0" && cd "$(dirname "$1")" && sha256sum "$(basename "$1")" > "$(basename "$1").sha256"`,
		x.f.Database("acme"), bad).CombinedOutput()
	require.NoError(t, err, string(out))
	x.destroy(t, "database")

	res, err := recovery.Restore(ctx, x.f.Layout, x.req())
	require.NoError(t, err)
	cs := byComponent(res)
	require.Equal(t, recovery.StatusRestored, cs["database"].Status)
	assert.Equal(t, x.latest["database"], cs["database"].Backup.Path, "the previous good dump")
	require.Len(t, cs["database"].Refused, 1)
	assert.Equal(t, bad, cs["database"].Refused[0].Path)
	assert.Contains(t, cs["database"].Refused[0].Reason, "pg_restore")
	assert.Equal(t, x.want.Rows, x.f.Snapshot(t, "acme").Rows)
	admin, err := x.f.PG.Open(ctx, "postgres")
	require.NoError(t, err)
	defer admin.Close()
	var n int
	require.NoError(t, admin.QueryRow("SELECT count(*) FROM pg_database WHERE datname LIKE 'fsrestore%' AND datname LIKE '%' || $1 || '%'", x.f.App).Scan(&n))
	assert.Zero(t, n, "no staging database left")
}

// TestRestore_PlainDumpWithPsqlLookingTextComesBack: a plain dump is run
// by psql in restricted mode under a key of fleetsafe's own (pkg/kinds/
// postgresql restrictfilter.go); a real pg_dump of a database whose rows,
// column default and comment hold psql-looking text (\unrestrict, \!,
// backslashes, backquotes) in COPY data and quotes restores whole: only
// pg_dump's own \restrict and \unrestrict lines are left out.
func TestRestore_PlainDumpWithPsqlLookingTextComesBack(t *testing.T) {
	x := newFixture(t)
	db := x.f.Database("acme")
	out, err := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname="+db, "-c",
		`CREATE TABLE public.psqltext (s text, d text DEFAULT '\! id \o /tmp/x');
		INSERT INTO public.psqltext VALUES (E'\\unrestrict abc'), (E'\\\\unrestrict'), (E'\\! id'), (E'a\\\\b\\\\'), ('`+"`id`"+`'), (E'\\.');
		COMMENT ON TABLE public.psqltext IS '\c other';`).CombinedOutput()
	require.NoError(t, err, string(out))
	query := "SELECT string_agg(s || d, '|' ORDER BY s) || obj_description('public.psqltext'::regclass) FROM public.psqltext"
	want, err := exec.Command("psql", "-X", "-A", "-t", "--dbname="+db, "-c", query).CombinedOutput()
	require.NoError(t, err, string(want))
	dir := x.f.BackupDir("acme")
	sqlFile := filepath.Join(dir, "db-"+time.Now().Add(-time.Hour).UTC().Format("20060102T150405")+".sql")
	out, err = exec.Command("pg_dump", "--dbname="+db, "--file="+sqlFile).CombinedOutput()
	require.NoError(t, err, string(out))
	l := relayout(t, x.f, "db-*.dump\n    format: pg_custom", "db-*.sql\n    format: pg_plain", "    checksum: sha256_sidecar\n", "")
	x.destroy(t, "database")
	res, err := recovery.Restore(context.Background(), l, x.req())
	require.NoError(t, err, "%+v", res)
	assert.Equal(t, sqlFile, byComponent(res)["database"].Backup.Path)
	got, err := exec.Command("psql", "-X", "-A", "-t", "--dbname="+db, "-c", query).CombinedOutput()
	require.NoError(t, err, string(got))
	assert.Equal(t, string(want), string(got))
}
