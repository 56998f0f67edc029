package postgresql

import (
	"context"
	"database/sql"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// TestGoneRestoreRoles attacks "the next run removes only the leftovers it
// can prove are its own": of three roles named like restore roles, the
// one without fleetsafe's comment (not provably ours) and the one whose
// run is alive (its advisory lock held) stay; only the one whose lock is
// free is dropped, with what it owns in a staging database.
func TestGoneRestoreRoles(t *testing.T) {
	pg := pgdump.Conn{}
	ctx := context.Background()
	admin, err := pg.Open(ctx, "postgres")
	if err != nil {
		if os.Getenv("FLEETSAFE_REQUIRE_PG") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer admin.Close()
	live, err := newRestoreRole(ctx, pg, "roletest", func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = live.drop(pg) }()
	gone, err := newRestoreRole(ctx, pg, "roletest", func(s string) { t.Log(s) })
	if err != nil {
		t.Fatal(err)
	}
	stray := restoreRolePrefix + "notours"
	exec := func(db *sql.DB, q string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	a := admin
	exec(a, "DROP ROLE IF EXISTS "+stray)
	exec(a, "CREATE ROLE "+stray)
	defer func() { _, _ = admin.ExecContext(ctx, "DROP ROLE IF EXISTS "+stray) }()
	stage := StagingPrefix + "roletest_" + strings.TrimPrefix(gone.name, restoreRolePrefix)
	exec(a, "CREATE DATABASE "+stage+" OWNER "+gone.name)
	defer func() { _, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+stage+" WITH (FORCE)") }()
	rc, err := gone.login(ctx, pg, stage)
	if err != nil {
		t.Fatal(err)
	}
	sdb, err := rc.Open(ctx, stage)
	if err != nil {
		t.Fatal(err)
	}
	exec(sdb, "CREATE TABLE t (i int)")
	sdb.Close()
	gone.close() // the run dies: its lock is released, its role stays
	// The lock goes when the server has ended the closed session, a moment
	// after the client closed it (longer on a loaded machine).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var held int
		if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2 AND objsubid = 2",
			uint32(advisoryClass), uint32(roleLockKey(gone.name))).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lock of the gone run's role %s is still held a minute after its session closed", gone.name)
		}
	}

	if err := dropGoneRestoreRoles(ctx, pg, admin); err != nil {
		// Other leftovers on the shared server may fail to drop; the
		// counts below are what this test asserts.
		t.Log(err)
	}
	count := func(role string) int {
		var n int
		if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count(gone.name) != 0 {
		t.Errorf("the role %s of a gone run is still there", gone.name)
	}
	if count(live.name) != 1 {
		t.Errorf("the role %s of a live run was dropped", live.name)
	}
	if count(stray) != 1 {
		t.Errorf("the role %s without fleetsafe's comment was dropped", stray)
	}
}

// TestOwnerFilter: OWNER TO lines are left out and their roles recorded;
// the same text inside COPY data passes untouched.
func TestOwnerFilter(t *testing.T) {
	in := "CREATE TABLE public.t (s text);\n" +
		"ALTER TABLE public.t OWNER TO app;\n" +
		"ALTER FUNCTION public.f() OWNER TO \"We\"\"ird\";\n" +
		"COPY public.t (s) FROM stdin;\n" +
		"ALTER TABLE public.t OWNER TO data;\n" +
		"\\.\n" +
		"ALTER SCHEMA public OWNER TO pg_database_owner;\n"
	f := newOwnerFilter(strings.NewReader(in))
	out, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	want := "CREATE TABLE public.t (s text);\n\n\nCOPY public.t (s) FROM stdin;\nALTER TABLE public.t OWNER TO data;\n\\.\n\n"
	if string(out) != want {
		t.Errorf("filtered:\n%q\nwant\n%q", out, want)
	}
	if got := strings.Join(f.named(), ","); got != `We"ird,app,pg_database_owner` {
		t.Errorf("owners %q", got)
	}
	if o := ownerOf(f.named()); o.database != "" || len(o.objects) != 2 {
		t.Errorf("two owners named: %+v", o)
	}
	if o := ownerOf([]string{"app", "pg_database_owner"}); o.database != "app" {
		t.Errorf("one owner named: %+v", o)
	}
}
