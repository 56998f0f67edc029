package attack3

import (
	"archive/tar"
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

// goodBackup makes, with GNU tar, a backup of a data tree tagged tag of
// instance name, hoursAgo old, at bk/<name>/data-<stamp>.tar.gz; it
// returns the path and the tree's digest.
func (x *fx) goodBackup(t *testing.T, name, tag string, hoursAgo int) (string, map[string]string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	tree(t, filepath.Join(src, "data"), tag)
	st, when := stamp(hoursAgo)
	out := filepath.Join(x.root, "bk", name, "data-"+st+".tar.gz")
	tarOf(t, src, "data", out, when)
	return out, digest(t, filepath.Join(src, "data"))
}

// TestSymlinkedInstanceDirectoryLeadsTheRestoreOutside attacks "nothing
// outside the component's location is ever touched": acme's data
// directory is gone and the directory that held it (the {name} element,
// srv/<app>/acme) was replaced by a symbolic link, to a directory outside
// every instance, or to bob's instance directory (bob's data missing
// too). A restore of acme must write neither there.
func TestSymlinkedInstanceDirectoryLeadsTheRestoreOutside(t *testing.T) {
	t.Run("to a directory outside", func(t *testing.T) {
		x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
		x.goodBackup(t, "acme", "acme", 2)
		outside := filepath.Join(x.root, "outside")
		must(t, os.MkdirAll(outside, 0o755))
		must(t, os.MkdirAll(filepath.Join(x.root, "srv", x.app), 0o755))
		must(t, os.Symlink(outside, filepath.Join(x.root, "srv", x.app, "acme")))
		res := x.restore(t, "acme")
		t.Logf("failed=%v changed=%v msg=%v data=%v", res["failed"], res["changed"], res["msg"], recoveryOf(res)["data"])
		if got := listDir(t, outside); len(got) > 1 {
			t.Errorf("restore of acme wrote through the symlinked instance directory into %s: %v", outside, got)
		}
		if _, err := os.Stat(x.data("acme")); err != nil && status(res, "data") == "present" && res["failed"] != true {
			t.Errorf("acme's data is missing (%v) but the restore reports it present and succeeds with nothing restored: %v", err, res["msg"])
		}
		archives := filepath.Join(x.root, "archives")
		must(t, os.MkdirAll(archives, 0o700))
		res = x.restore(t, "acme", "force", true, "archive_dir", archives)
		t.Logf("force: failed=%v changed=%v msg=%v data=%v", res["failed"], res["changed"], res["msg"], recoveryOf(res)["data"])
		if got := listDir(t, outside); len(got) > 1 {
			t.Errorf("a forced restore of acme wrote through the symlinked instance directory into %s: %v", outside, got)
		}
	})
	t.Run("to another instance", func(t *testing.T) {
		x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
		x.goodBackup(t, "acme", "acme", 2)
		bob := filepath.Join(x.root, "srv", x.app, "bob")
		must(t, os.MkdirAll(bob, 0o755))
		must(t, os.WriteFile(filepath.Join(bob, "keep"), []byte("bob\n"), 0o644))
		must(t, os.Symlink("bob", filepath.Join(x.root, "srv", x.app, "acme")))
		res := x.restore(t, "acme")
		t.Logf("failed=%v changed=%v msg=%v data=%v", res["failed"], res["changed"], res["msg"], recoveryOf(res)["data"])
		if got := listDir(t, bob); len(got) > 2 {
			t.Errorf("restore of acme wrote acme's data into bob's instance directory through the symlink acme -> bob: %v", got)
		}
	})
}

// TestAmbiguousBackupNameIsNeverAnotherInstances attacks "each backup
// file is credited to exactly one instance": with the rule
// bk/data-{name}-*.tar.gz, the file data-a-b-<stamp>.tar.gz is a backup
// of instance a-b, and matches a's rule too. Both instances are gone (the
// incident); a restore of a must use a's own (older) backup, never a-b's
// newer one.
func TestAmbiguousBackupNameIsNeverAnotherInstances(t *testing.T) {
	x := newFx(t, "bk/data-{name}-*.tar.gz", "tar_gz", "")
	src := t.TempDir()
	tree(t, filepath.Join(src, "a", "data"), "a")
	tree(t, filepath.Join(src, "a-b", "data"), "a-b")
	st, when := stamp(30)
	own := filepath.Join(x.root, "bk", "data-a-"+st+".tar.gz")
	tarOf(t, filepath.Join(src, "a"), "data", own, when)
	st, when = stamp(2)
	other := filepath.Join(x.root, "bk", "data-a-b-"+st+".tar.gz")
	tarOf(t, filepath.Join(src, "a-b"), "data", other, when)
	res := x.restore(t, "a")
	t.Logf("failed=%v status=%s used=%s msg=%v", res["failed"], status(res, "data"), backupUsed(res, "data"), res["msg"])
	if backupUsed(res, "data") == other {
		t.Errorf("restore of instance a used %s, the backup of instance a-b", other)
	}
	if got, err := os.ReadFile(filepath.Join(x.data("a"), "a.txt")); err == nil && string(got) != "a a\n" {
		t.Errorf("instance a was restored with another instance's data: a.txt = %q", got)
	}
}

// TestHostileTarNeverWritesOutside attacks "nothing outside the
// component's location is ever touched" and "a hostile backup is refused,
// named, and the next older good one used": the newest backup of acme's
// data is a crafted tar; an older one made by GNU tar is good.
func TestHostileTarNeverWritesOutside(t *testing.T) {
	cases := map[string][]tEntry{
		"dot-slash-dot-dot": {{name: "./", typ: tar.TypeDir}, {name: "./../escape", typ: tar.TypeReg, body: "x"}},
		"climb inside top":  {{name: "data/", typ: tar.TypeDir}, {name: "data/sub/../../escape", typ: tar.TypeReg, body: "x"}},
		"absolute":          {{name: "data/", typ: tar.TypeDir}, {name: "/tmp/attack3-abs-escape", typ: tar.TypeReg, body: "x"}},
		"hard link out":     {{name: "data/", typ: tar.TypeDir}, {name: "data/h", typ: tar.TypeLink, link: "../../../outside/secret"}},
		"hard link abs":     {{name: "data/", typ: tar.TypeDir}, {name: "data/h", typ: tar.TypeLink, link: "/etc/hostname"}},
		"write through link": {{name: "data/", typ: tar.TypeDir}, {name: "data/l", typ: tar.TypeSymlink, link: "../../../outside"},
			{name: "data/l/escape", typ: tar.TypeReg, body: "x"}},
		"link then replace": {{name: "data/", typ: tar.TypeDir}, {name: "data/l", typ: tar.TypeSymlink, link: "../../../outside/secret"},
			{name: "data/l", typ: tar.TypeReg, body: "overwrite"}},
		"another component":          {{name: "data/", typ: tar.TypeDir}, {name: "data/a", typ: tar.TypeReg, body: "x"}, {name: "config/evil", typ: tar.TypeReg, body: "x"}},
		"another instance full path": {{name: "srv/bob/data/", typ: tar.TypeDir}, {name: "srv/bob/data/a", typ: tar.TypeReg, body: "x"}},
		"sibling via dot":            {{name: "./", typ: tar.TypeDir}, {name: "./a", typ: tar.TypeReg, body: "x"}, {name: "../bob/data/a", typ: tar.TypeReg, body: "x"}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
			good, want := x.goodBackup(t, "acme", "acme", 30)
			outside := filepath.Join(x.root, "outside")
			must(t, os.MkdirAll(outside, 0o755))
			must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("secret\n"), 0o600))
			before := digest(t, x.root)
			st, when := stamp(2)
			bad := filepath.Join(x.root, "bk", "acme", "data-"+st+".tar.gz")
			craftTarGz(t, bad, when, entries...)
			res := x.restore(t, "acme")
			if used := backupUsed(res, "data"); used != good {
				t.Errorf("restore used %q, want the older good backup %s (status %s, msg %v)", used, good, status(res, "data"), res["msg"])
			}
			if got := digest(t, x.data("acme")); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("acme's data is not its good backup:\n got %v\nwant %v", got, want)
			}
			after := digest(t, x.root)
			for p, d := range before {
				if after[p] != d {
					t.Errorf("%s changed (%q -> %q)", p, d, after[p])
				}
			}
			for p := range after {
				acme := filepath.Join("srv", x.app, "acme")
				if _, ok := before[p]; !ok && !strings.HasPrefix(p, acme) && !strings.HasPrefix(acme, p) && !strings.HasPrefix(p, "bk/") {
					t.Errorf("%s was written outside acme's component", p)
				}
			}
			if _, err := os.Lstat("/tmp/attack3-abs-escape"); err == nil {
				_ = os.Remove("/tmp/attack3-abs-escape")
				t.Errorf("an absolute entry was written")
			}
			refused := recoveryOf(res)["data"]["refused"]
			if !strings.Contains(fmt.Sprint(refused), bad) {
				t.Errorf("the hostile backup %s is not named as refused: %v", bad, refused)
			}
		})
	}
}
