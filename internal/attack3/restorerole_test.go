package attack3

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
)

// restoreRolesLeft lists the temporary restore roles of restores into
// database db whose run is gone (their advisory lock is free): roles of
// restores running at the same time in other tests, and those other
// tests' killed runs leave (their roles are named after their own
// databases), are not this test's leftovers.
func (x *fx) restoreRolesLeft(t *testing.T, db string) string {
	t.Helper()
	all := x.psql(t, "postgres", fmt.Sprintf("SELECT coalesce(string_agg(rolname, ','), '') FROM pg_roles WHERE starts_with(rolname, '%s')", postgresql.RestoreRolePrefixFor(db)))
	var left []string
	for _, r := range strings.Split(all, ",") {
		if r == "" {
			continue
		}
		h := fnv.New32a()
		h.Write([]byte(r))
		held := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %d AND objid = %d AND objsubid = 2", uint32(0x66737200), h.Sum32()))
		if held == "0" {
			left = append(left, r)
		}
	}
	return strings.Join(left, ",")
}

// TestPlainDumpCannotRegainPrivilege attacks the structural fix of
// FINDINGS-3 #1/#2 ("the backup's content runs as a role that cannot
// reach beyond the staging database"): a plain dump that tries to climb
// back to the module's role (RESET ROLE, SET SESSION AUTHORIZATION, SET
// ROLE), to make its own role a superuser, to create a role, or to take
// another database, each followed by a statement that needs the privilege
// it tried to gain. Nothing of it may act, and no temporary role may be
// left behind.
func TestPlainDumpCannotRegainPrivilege(t *testing.T) {
	admin := x0(t)
	cases := []struct{ name, climb string }{
		{"RESET ROLE", "RESET ROLE;"},
		{"SET SESSION AUTHORIZATION to the module's role", "SET SESSION AUTHORIZATION " + admin + ";"},
		{"SET SESSION AUTHORIZATION DEFAULT", "SET SESSION AUTHORIZATION DEFAULT;"},
		{"SET ROLE postgres", "DO $$BEGIN EXECUTE 'SET ' || 'ROLE postgres'; END$$;"},
		{"ALTER ROLE itself SUPERUSER", "DO $$BEGIN EXECUTE 'ALTER ' || 'ROLE ' || quote_ident(session_user) || ' SUPERUSER CREATEROLE'; END$$;"},
		{"GRANT itself the module's role", "DO $$BEGIN EXECUTE 'GRANT ' || quote_ident('" + admin + "') || ' TO ' || quote_ident(session_user); END$$;"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_plain")
			victim := x.app + "x_other"
			role := x.app + "_pwn"
			t.Cleanup(func() { _ = exec.Command("psql", "-X", "-d", "postgres", "-c", "DROP ROLE IF EXISTS "+role).Run() })
			x.createDB(t, victim, "CREATE TABLE keep (i int); INSERT INTO keep VALUES (1);")
			owner := x.app + "_own"
			x.psql(t, "postgres", "CREATE ROLE "+owner+" NOLOGIN")
			t.Cleanup(func() {
				_ = fleettest.DropDatabasesLike(context.Background(), x.pg, x.app)
				_ = exec.Command("psql", "-X", "-d", "postgres", "-c", "DROP ROLE IF EXISTS "+owner).Run()
			})
			src := x.dbName("acme")
			x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %s", src, owner))
			x.psql(t, src, "SET ROLE "+owner+"; CREATE TABLE t (i int); INSERT INTO t VALUES (1),(2);")
			hostile := c.climb + "\n" +
				fmt.Sprintf("DO $$BEGIN EXECUTE 'CREATE ' || 'ROLE %s SUPERUSER LOGIN'; END$$;\n", role) +
				fmt.Sprintf("DO $$BEGIN EXECUTE format('ALTER DATABASE %%I SET work_mem = %%L', '%s', '64kB'); END$$;\n", victim) +
				fmt.Sprintf("DO $$BEGIN EXECUTE format('ALTER DATABASE %%I OWNER TO %%I', '%s', session_user); END$$;\n", victim)
			st, _ := stamp(2)
			x.plainDumpOf(t, src, filepath.Join(x.root, "bk", "acme", "db-"+st+".sql"), hostile)
			x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", src))
			tree(t, x.data("acme"), "acme")
			res := x.restore(t, "acme")
			t.Logf("failed=%v status=%s msg=%v", res["failed"], status(res, "database"), res["msg"])
			if got := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_roles WHERE rolname = '%s'", role)); got != "0" {
				t.Errorf("after %s, the backup created the superuser role %s", c.climb, role)
			}
			if got := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '%s'", victim)); got != "0" {
				t.Errorf("after %s, the backup changed another app's database %s", c.climb, victim)
			}
			if got := x.psql(t, "postgres", fmt.Sprintf("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s'", victim)); got != admin {
				t.Errorf("after %s, another app's database %s belongs to %s", c.climb, victim, got)
			}
			if left := x.restoreRolesLeft(t, x.dbName("acme")); left != "" {
				t.Errorf("temporary restore roles left behind: %s", left)
			}
			if res["failed"] != true {
				t.Errorf("a dump whose statements fail was restored: %v", res["msg"])
			}
		})
	}
}

// x0 is the module's own role (the OS user, by peer authentication).
func x0(t *testing.T) string {
	out, err := exec.Command("psql", "-X", "-At", "-d", "postgres", "-c", "SELECT current_user").Output()
	if err != nil {
		t.Fatalf("psql: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestDumpOwnedByASuperuserWithCodeIsRefused attacks "code of a backup
// never runs with a privileged role's rights, not even later": a pg_custom
// backup whose DATABASE entry names an owner that is a superuser, may
// CREATEROLE, or may write the server's files, and that defines a
// function (which, owned by such a role, would run with its rights from a
// SECURITY DEFINER call, an index expression or a materialized view), is
// refused, naming the role, why and the function; an owner that is gone is
// refused naming it; the same dump with an unprivileged owner is restored
// and owned by it.
func TestDumpOwnedByASuperuserWithCodeIsRefused(t *testing.T) {
	cases := []struct {
		name, attrs, grant, want string // want: "" restored, else words of the refusal
		drop                     bool
	}{
		{name: "superuser", want: "superuser"},
		{name: "createrole", attrs: "CREATEROLE", want: "CREATEROLE"},
		{name: "server files", grant: "pg_write_server_files", want: "pg_write_server_files"},
		{name: "missing", drop: true, want: "does not exist"},
		{name: "unprivileged"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_custom")
			tree(t, x.data("acme"), "acme")
			owner := x0(t)
			db := x.dbName("acme")
			t.Cleanup(func() { _ = fleettest.DropDatabasesLike(context.Background(), x.pg, x.app) })
			if c.name != "superuser" {
				owner = x.app + "_own"
				x.psql(t, "postgres", "CREATE ROLE "+owner+" NOLOGIN "+c.attrs)
				if c.grant != "" {
					x.psql(t, "postgres", "GRANT "+c.grant+" TO "+owner)
				}
				t.Cleanup(func() {
					_ = fleettest.DropDatabasesLike(context.Background(), x.pg, x.app)
					_ = exec.Command("psql", "-X", "-d", "postgres", "-c", "DROP ROLE IF EXISTS "+owner).Run()
				})
			}
			x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %s", db, owner))
			x.psql(t, db, "SET ROLE "+owner+"; CREATE FUNCTION public.f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'; CREATE TABLE t (i int); INSERT INTO t VALUES (1);")
			st, when := stamp(2)
			out := filepath.Join(x.root, "bk", "acme", "db-"+st+".dump")
			must(t, os.MkdirAll(filepath.Dir(out), 0o750))
			cmd := exec.Command("pg_dump", "--format=custom", "--file="+out, "--dbname="+db)
			cmd.Env = append(os.Environ(), x.pg.Env()...)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("pg_dump: %v: %s", err, b)
			}
			must(t, os.Chtimes(out, when, when))
			x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))
			if c.drop {
				x.psql(t, "postgres", "DROP ROLE "+owner)
			}
			res := x.restore(t, "acme")
			exists := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_database WHERE datname = '%s'", db))
			if c.want != "" {
				reason := fmt.Sprint(recoveryOf(res)["database"])
				if res["failed"] != true || exists != "0" {
					t.Errorf("a dump owned by %s (%s) that defines a SECURITY DEFINER function was restored (failed=%v): %v", owner, c.name, res["failed"], res["msg"])
				}
				if !strings.Contains(reason, owner) || !strings.Contains(reason, c.want) || (!c.drop && !strings.Contains(reason, "f()")) {
					t.Errorf("the refusal does not name the role %s, %q and the function: %s", owner, c.want, reason)
				}
			} else {
				if res["failed"] != false {
					t.Fatalf("restore failed: %v %v", res["msg"], recoveryOf(res)["database"])
				}
				if got := x.psql(t, db, "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'f'"); got != owner {
					t.Errorf("the function belongs to %q, want %s", got, owner)
				}
			}
			if left := x.restoreRolesLeft(t, x.dbName("acme")); left != "" {
				t.Errorf("temporary restore roles left behind: %s", left)
			}
		})
	}
}

// TestRestoreKilledLeavesNoRestoreRole attacks "the temporary role is
// dropped whatever happens": the module is killed (SIGKILL) while
// pg_restore runs as the temporary role (a CHECK constraint makes the
// load take two seconds). The role is left by the killed run; the next
// run must remove it (its lock is free: its run is gone), restore the
// database, and leave no role.
func TestRestoreKilledLeavesNoRestoreRole(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_custom")
	tree(t, x.data("acme"), "acme")
	owner := x.app + "_own"
	x.psql(t, "postgres", "CREATE ROLE "+owner+" NOLOGIN")
	t.Cleanup(func() {
		_ = fleettest.DropDatabasesLike(context.Background(), x.pg, x.app)
		_ = exec.Command("psql", "-X", "-d", "postgres", "-c", "DROP ROLE IF EXISTS "+owner).Run()
	})
	db := x.dbName("acme")
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %s", db, owner))
	x.psql(t, db, "SET ROLE "+owner+`; CREATE FUNCTION public.slow(v int) RETURNS boolean LANGUAGE sql AS 'SELECT pg_sleep(0.05) IS NOT NULL';
		CREATE TABLE t (i int CHECK (public.slow(i))); INSERT INTO t SELECT generate_series(1, 40);`)
	st, when := stamp(2)
	out := filepath.Join(x.root, "bk", "acme", "db-"+st+".dump")
	must(t, os.MkdirAll(filepath.Dir(out), 0o750))
	c := exec.Command("pg_dump", "--format=custom", "--file="+out, "--dbname="+db)
	c.Env = append(os.Environ(), x.pg.Env()...)
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, b)
	}
	must(t, os.Chtimes(out, when, when))
	x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))

	run := x.cmd(t, "acme", nil)
	must(t, run.Start())
	deadline := time.Now().Add(20 * time.Second)
	var role string
	for role == "" && time.Now().Before(deadline) {
		role = x.psql(t, "postgres", fmt.Sprintf(`SELECT coalesce(min(r.rolname), '') FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba
			WHERE d.datname LIKE 'fsrestore\_%%%s' AND r.rolname LIKE 'fsrestore\_role\_%%'`, db))
		time.Sleep(20 * time.Millisecond)
	}
	if role == "" {
		_ = run.Process.Kill()
		_ = run.Wait()
		t.Fatal("the restore never staged the database as a temporary role")
	}
	// Killed at once: the staging database is still the role's (a run
	// that finished first would leave nothing to clean, on a fast machine).
	must(t, run.Process.Kill())
	_ = run.Wait()
	// Any restore on the server drops the roles of gone runs first: with
	// other packages' tests restoring at the same time, the killed run's
	// role may already be gone before the next run here; the promise (no
	// role of a killed run outlives the next restore) is the same.
	if got := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_roles WHERE rolname = '%s'", role)); got != "1" {
		t.Logf("the killed run's role %s was already removed by another restore on the server", role)
	}
	res := x.restore(t, "acme")
	if res["failed"] != false {
		t.Fatalf("the run after the kill failed: %v %v", res["msg"], recoveryOf(res)["database"])
	}
	if got := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_roles WHERE rolname = '%s'", role)); got != "0" {
		t.Errorf("the temporary role %s of the killed run is still there after the next run", role)
	}
	if left := x.restoreRolesLeft(t, x.dbName("acme")); left != "" {
		t.Errorf("temporary restore roles left behind: %s", left)
	}
	if got := x.psql(t, db, "SELECT count(*)::text || ' ' || pg_get_userbyid((SELECT datdba FROM pg_database WHERE datname = current_database())) FROM t"); got != "40 "+owner {
		t.Errorf("restored database: rows and owner %q, want 40 %s", got, owner)
	}
}

// TestPlainDumpWithSeveralOwnersSaysSo attacks "results are honest" for
// the owner hand-over: a plain dump whose tables belong to two roles
// names no single owner for the database; the restore must say in its
// notes that it could not tell, and which roles the dump named.
func TestPlainDumpWithSeveralOwnersSaysSo(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_plain")
	tree(t, x.data("acme"), "acme")
	r1, r2 := x.app+"_one", x.app+"_two"
	for _, r := range []string{r1, r2} {
		x.psql(t, "postgres", "CREATE ROLE "+r+" NOLOGIN")
	}
	t.Cleanup(func() {
		_ = fleettest.DropDatabasesLike(context.Background(), x.pg, x.app)
		for _, r := range []string{r1, r2} {
			_ = exec.Command("psql", "-X", "-d", "postgres", "-c", "DROP ROLE IF EXISTS "+r).Run()
		}
	})
	db := x.dbName("acme")
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", db))
	x.psql(t, db, fmt.Sprintf("CREATE TABLE a (i int); CREATE TABLE b (i int); ALTER TABLE a OWNER TO %s; ALTER TABLE b OWNER TO %s;", r1, r2))
	st, when := stamp(2)
	out := filepath.Join(x.root, "bk", "acme", "db-"+st+".sql")
	x.plainDumpOf(t, db, out, "")
	must(t, os.Chtimes(out, when, when))
	x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))
	res := x.restore(t, "acme")
	if res["failed"] != false {
		t.Fatalf("restore failed: %v %v", res["msg"], recoveryOf(res)["database"])
	}
	notes := fmt.Sprint(res["notes"])
	if !strings.Contains(notes, "several owners") || !strings.Contains(notes, r1) || !strings.Contains(notes, r2) {
		t.Errorf("a dump naming two owners was restored without saying the owner could not be told: notes %v", notes)
	}
}
