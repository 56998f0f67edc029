package recovery_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/recovery"
)

func drillComponents(res *recovery.DrillResult) map[string]recovery.DrillComponent {
	out := map[string]recovery.DrillComponent{}
	for _, c := range res.Components {
		out[c.Component] = c
	}
	return out
}

// stagingLeft says what scratch a drill could leave: staging databases of
// the fleet and entries next to the instance's directories.
func stagingLeft(t *testing.T, x *fixture) (int, []string) {
	t.Helper()
	admin, err := x.f.PG.Open(context.Background(), "postgres")
	require.NoError(t, err)
	defer admin.Close()
	var n int
	require.NoError(t, admin.QueryRow("SELECT count(*) FROM pg_database WHERE datname LIKE '%' || $1 || '%' AND datname <> $2", x.f.App, x.f.Database("acme")).Scan(&n))
	var names []string
	for _, c := range []string{"config", "data"} {
		ents, err := os.ReadDir(filepath.Dir(x.f.Path(c, "acme")))
		require.NoError(t, err)
		for _, e := range ents {
			names = append(names, c+":"+e.Name())
		}
	}
	return n, names
}

// TestDrill_GoodBackupsPassAndLeaveNothing: every backed-up component is
// restored into scratch and matches its backup; the live instance is
// untouched and no scratch is left.
func TestDrill_GoodBackupsPassAndLeaveNothing(t *testing.T) {
	x := newFixture(t)
	dbsBefore, entsBefore := stagingLeft(t, x)
	res, err := recovery.Drill(context.Background(), x.f.Layout, "acme", x.f.Options(), time.Time{})
	require.NoError(t, err)
	assert.True(t, res.OK, "%+v", res)
	cs := drillComponents(res)
	require.Len(t, cs, 3, "config, data, database (logs and service are not backed up)")
	assert.Equal(t, x.latest["data"], cs["data"].Backup.Path)
	assert.Equal(t, 8, cs["data"].Files, "the 8 regular files")
	assert.Positive(t, cs["data"].Bytes)
	assert.Equal(t, 2, cs["database"].Tables)
	live, err := x.f.PG.Open(context.Background(), x.f.Database("acme"))
	require.NoError(t, err)
	var rows int64
	require.NoError(t, live.QueryRow("SELECT (SELECT count(*) FROM public.content) + (SELECT count(*) FROM public.users)").Scan(&rows))
	live.Close()
	assert.Equal(t, rows, cs["database"].Rows, "every row of the dump restored")
	assert.Equal(t, x.want, x.f.Snapshot(t, "acme"), "the live instance untouched")
	dbs, ents := stagingLeft(t, x)
	assert.Equal(t, dbsBefore, dbs, "no scratch database left")
	assert.Equal(t, entsBefore, ents, "no scratch directory left")
}

// TestDrill_CatchesDumpThatPgRestoreRejects: the newest dump passes every
// check but pg_restore rejects it; the drill fails naming pg_restore and
// drops its scratch database.
func TestDrill_CatchesDumpThatPgRestoreRejects(t *testing.T) {
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
	dbsBefore, entsBefore := stagingLeft(t, x)

	res, err := recovery.Drill(ctx, x.f.Layout, "acme", x.f.Options(), time.Time{})
	require.NoError(t, err)
	assert.False(t, res.OK)
	cs := drillComponents(res)
	assert.Equal(t, recovery.DrillFailed, cs["database"].Status)
	assert.Contains(t, cs["database"].Reason, bad)
	assert.Contains(t, cs["database"].Reason, "pg_restore")
	assert.Equal(t, recovery.DrillOK, cs["data"].Status)
	dbs, ents := stagingLeft(t, x)
	assert.Equal(t, dbsBefore, dbs, "no scratch database left")
	assert.Equal(t, entsBefore, ents)
}

// TestDrill_CatchesTarMissingComponentDirectory: the newest data backup is
// a valid, checksummed tar.zst of the instance that lacks the data
// directory; the drill fails on it.
func TestDrill_CatchesTarMissingComponentDirectory(t *testing.T) {
	x := newFixture(t)
	bad := filepath.Join(x.f.BackupDir("acme"), "data-"+time.Now().Add(-10*time.Minute).UTC().Format("20060102T150405")+".tar.zst")
	// The backup script's include list lost data/: what went in is as
	// big (it passes the shrink check), but under another directory.
	data := x.f.Path("data", "acme")
	out, err := exec.Command("sh", "-c", `tar -C "$0" --transform 's,^data,data.old,' -cf - data | zstd -q -o "$1"`, filepath.Dir(data), bad).CombinedOutput()
	require.NoError(t, err, string(out))
	_, entsBefore := stagingLeft(t, x)

	res, err := recovery.Drill(context.Background(), x.f.Layout, "acme", x.f.Options(), time.Time{})
	require.NoError(t, err)
	assert.False(t, res.OK)
	cs := drillComponents(res)
	assert.Equal(t, recovery.DrillFailed, cs["data"].Status)
	assert.Contains(t, cs["data"].Reason, bad)
	assert.Contains(t, cs["data"].Reason, "the restore of", "caught by the restore itself, not by a check before it")
	assert.Contains(t, cs["data"].Reason, "does not hold the component")
	_, ents := stagingLeft(t, x)
	assert.Equal(t, entsBefore, ents, "no scratch directory left")
}

// TestDrill_RemovesScratchOfAKilledRun: a run interrupted after staging
// (the process dies there; here the step hook stops it) leaves a staging
// place; the next drill removes it first and says so.
func TestDrill_RemovesScratchOfAKilledRun(t *testing.T) {
	x := newFixture(t)
	x.destroy(t, "data")
	_, entsBefore := stagingLeft(t, x)
	func() {
		defer func() { _ = recover() }()
		req := x.req()
		req.AfterStep = func(s string) {
			if s == "stage:data" {
				panic("killed")
			}
		}
		_, _ = recovery.Restore(context.Background(), x.f.Layout, req)
	}()
	_, ents := stagingLeft(t, x)
	require.Greater(t, len(ents), len(entsBefore), "a staging leftover exists")
	res, err := recovery.Drill(context.Background(), x.f.Layout, "acme", x.f.Options(), time.Time{})
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Contains(t, res.Notes[0], "removed 1 scratch leftover")
	_, ents = stagingLeft(t, x)
	assert.Equal(t, entsBefore, ents)
}
