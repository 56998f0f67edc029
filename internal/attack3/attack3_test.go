package attack3

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// plainDumpOf writes, at out, a real plain pg_dump of database src with
// hostile SQL inserted before its closing comment.
func (x *fx) plainDumpOf(t *testing.T, src, out, hostile string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(out), 0o750))
	c := exec.Command("pg_dump", "--format=plain", "--dbname="+src)
	c.Env = append(os.Environ(), x.pg.Env()...)
	dump, err := c.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	s := string(dump)
	const footer = "-- PostgreSQL database dump complete"
	i := strings.LastIndex(s, footer)
	if i < 0 {
		t.Fatalf("pg_dump output without its footer")
	}
	s = s[:i] + hostile + "\n\n" + s[i:]
	must(t, os.WriteFile(out, []byte(s), 0o640))
}

// TestPlainDumpReachesBeyondTheInstanceDatabase attacks "only the named
// instance's components are ever written; another instance, another
// app's data is never touched, whatever the backups contain": a plain
// SQL backup of acme's database (real pg_dump output) carrying one
// statement that acts on another database, a role or the server's files,
// in forms the plain-dump guard does not list. After restoring acme's
// database from it, the other database, the roles and the file system
// must be as they were.
func TestPlainDumpReachesBeyondTheInstanceDatabase(t *testing.T) {
	pwnDir, err := os.MkdirTemp("/tmp", "attack3-pwn")
	must(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(pwnDir) })
	must(t, os.Chmod(pwnDir, 0o777))

	cases := []struct {
		name    string
		hostile func(x *fx, victim, role, file string) string
		check   func(t *testing.T, x *fx, victim, role, file string)
	}{
		{
			name: "catalog UPDATE closes another app's database",
			hostile: func(x *fx, victim, role, file string) string {
				return fmt.Sprintf("UPDATE pg_catalog.pg_database SET datallowconn = false WHERE datname = '%s';", victim)
			},
			check: func(t *testing.T, x *fx, victim, role, file string) {
				if got := x.psql(t, "postgres", fmt.Sprintf("SELECT datallowconn FROM pg_database WHERE datname = '%s'", victim)); got != "t" {
					t.Errorf("restoring acme's database from a plain dump closed another app's database %s to connections (datallowconn = %q): a catalog UPDATE passed the guard", victim, got)
				}
			},
		},
		{
			name: "DO block alters another database",
			hostile: func(x *fx, victim, role, file string) string {
				return fmt.Sprintf("DO $$BEGIN EXECUTE format('ALTER DATABASE %%I SET work_mem = %%L', '%s', '64kB'); END$$;", victim)
			},
			check: func(t *testing.T, x *fx, victim, role, file string) {
				got := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '%s'", victim))
				if got != "0" {
					t.Errorf("restoring acme's database from a plain dump changed the settings of another app's database %s: ALTER DATABASE inside a DO block passed the guard", victim)
				}
			},
		},
		{
			name: "DO block creates a superuser role",
			hostile: func(x *fx, victim, role, file string) string {
				return fmt.Sprintf("DO $$BEGIN EXECUTE 'CREATE ' || 'ROLE %s SUPERUSER LOGIN'; END$$;", role)
			},
			check: func(t *testing.T, x *fx, victim, role, file string) {
				if got := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_roles WHERE rolname = '%s'", role)); got != "0" {
					t.Errorf("restoring acme's database from a plain dump created the superuser role %s on the server", role)
				}
			},
		},
		{
			name: "COPY TO a server file",
			hostile: func(x *fx, victim, role, file string) string {
				return fmt.Sprintf("COPY (SELECT 'written by a backup') TO '%s';", file)
			},
			check: func(t *testing.T, x *fx, victim, role, file string) {
				if _, err := os.Lstat(file); err == nil {
					t.Errorf("restoring acme's database from a plain dump wrote the file %s outside every component (COPY … TO a file passed the guard)", file)
				}
			},
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_plain")
			victim := x.app + "x_other"
			role := x.app + "_pwn"
			file := filepath.Join(pwnDir, fmt.Sprintf("pwned-%d", i))
			t.Cleanup(func() { _ = exec.Command("psql", "-X", "-d", "postgres", "-c", "DROP ROLE IF EXISTS "+role).Run() })
			x.createDB(t, victim, "CREATE TABLE keep (i int); INSERT INTO keep VALUES (1);")
			src := x.dbName("acme")
			x.createDB(t, src, "CREATE TABLE t (i int); INSERT INTO t VALUES (1),(2);")
			st, _ := stamp(2)
			x.plainDumpOf(t, src, filepath.Join(x.root, "bk", "acme", "db-"+st+".sql"), c.hostile(x, victim, role, file))
			x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", src))
			tree(t, x.data("acme"), "acme") // data present: only the database is missing
			res := x.restore(t, "acme")
			t.Logf("failed=%v status=%s msg=%v recovery=%v", res["failed"], status(res, "database"), res["msg"], recoveryOf(res)["database"])
			c.check(t, x, victim, role, file)
		})
	}
}

// TestCustomDumpRunsCodeBeyondTheInstanceDatabase attacks the same
// promise through a pg_custom backup: a real `pg_dump -Fc` of a database
// named as acme's, whose CHECK constraint calls a function that alters
// another app's database when it runs anywhere but in the database it
// was dumped from. pg_restore loads the rows, and so runs the function,
// in the staging database as the restoring (superuser) role.
func TestCustomDumpRunsCodeBeyondTheInstanceDatabase(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_custom")
	victim := x.app + "x_other"
	x.createDB(t, victim, "CREATE TABLE keep (i int); INSERT INTO keep VALUES (1);")
	src := x.dbName("acme")
	x.createDB(t, src, fmt.Sprintf(`
CREATE FUNCTION public.ev(v int) RETURNS int LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
  IF current_database() <> '%s' THEN
    EXECUTE format('ALTER DATABASE %%I SET work_mem = %%L', '%s', '64kB');
  END IF;
  RETURN v;
END $f$;
CREATE TABLE public.t (i int CHECK (public.ev(i) = i));
INSERT INTO public.t SELECT g FROM generate_series(1, 50) g;`, src, victim))
	st, when := stamp(2)
	out := filepath.Join(x.root, "bk", "acme", "db-"+st+".dump")
	must(t, os.MkdirAll(filepath.Dir(out), 0o750))
	c := exec.Command("pg_dump", "--format=custom", "--file="+out, "--dbname="+src)
	c.Env = append(os.Environ(), x.pg.Env()...)
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, b)
	}
	must(t, os.Chtimes(out, when, when))
	x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", src))
	tree(t, x.data("acme"), "acme")
	res := x.restore(t, "acme")
	t.Logf("failed=%v status=%s msg=%v recovery=%v", res["failed"], status(res, "database"), res["msg"], recoveryOf(res)["database"])
	got := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '%s'", victim))
	if got != "0" {
		t.Errorf("restoring acme's database from a pg_custom backup ran the backup's code as the restoring role and changed another app's database %s (ALTER DATABASE from a CHECK constraint's function)", victim)
	}
}
