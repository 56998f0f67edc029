package attack3

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
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
			name: "COMMENT ON another database",
			hostile: func(x *fx, victim, role, file string) string {
				return fmt.Sprintf("COMMENT ON DATABASE %s IS 'taken over by a backup';", victim)
			},
			check: func(t *testing.T, x *fx, victim, role, file string) {
				if got := x.psql(t, "postgres", fmt.Sprintf("SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = '%s'", victim)); got != "" {
					t.Errorf("restoring acme's database from a plain dump changed another app's database %s (its comment is now %q)", victim, got)
				}
			},
		},
		{
			name: "GRANT a server role",
			hostile: func(x *fx, victim, role, file string) string {
				return fmt.Sprintf("GRANT pg_write_server_files TO %s;", role)
			},
			check: func(t *testing.T, x *fx, victim, role, file string) {
				if got := x.psql(t, "postgres", fmt.Sprintf("SELECT pg_has_role('%s', 'pg_write_server_files', 'MEMBER')", role)); got != "f" {
					t.Errorf("restoring acme's database from a plain dump granted the role %s the right to write the server's files", role)
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
			if strings.Contains(c.name, "GRANT") {
				x.psql(t, "postgres", "CREATE ROLE "+role+" NOLOGIN")
			}
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
	base := filepath.Base(x.data(name))
	tree(t, filepath.Join(src, base), tag)
	st, when := stamp(hoursAgo)
	out := filepath.Join(x.root, "bk", name, "data-"+st+".tar.gz")
	tarOf(t, src, base, out, when)
	return out, digest(t, filepath.Join(src, base))
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
		"top is a link out":          {{name: "data", typ: tar.TypeSymlink, link: "../../../outside"}},
		"top is a link then entries": {{name: "data", typ: tar.TypeSymlink, link: "../../../outside"}, {name: "data/escape", typ: tar.TypeReg, body: "x"}},
		"dot is a link":              {{name: ".", typ: tar.TypeSymlink, link: "../../../outside"}, {name: "./escape", typ: tar.TypeReg, body: "x"}},
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

// TestTruncatedCompressedBackupVouchedBySidecar attacks "a broken backup
// is never used, the next older good one is, with its age": the newest
// backup is cut (gzip, zstd) and its sha256 sidecar was written after the
// cut, so the checksum matches; the rule asks for the sidecar.
func TestTruncatedCompressedBackupVouchedBySidecar(t *testing.T) {
	for _, c := range []struct{ format, ext, flag string }{{"tar_gz", "tar.gz", "-czf"}, {"tar_zst", "tar.zst", "--zstd"}} {
		t.Run(c.format, func(t *testing.T) {
			x := newFx(t, "bk/{name}/data-*."+c.ext, c.format+"\n    checksum: sha256_sidecar", "")
			src := t.TempDir()
			tree(t, filepath.Join(src, "data"), "old")
			for i := range 200 {
				must(t, os.WriteFile(filepath.Join(src, "data", fmt.Sprintf("f%03d", i)), []byte(strings.Repeat(fmt.Sprint(i), 300)), 0o644))
			}
			want := digest(t, filepath.Join(src, "data"))
			mk := func(hours int) string {
				st, when := stamp(hours)
				out := filepath.Join(x.root, "bk", "acme", "data-"+st+"."+c.ext)
				must(t, os.MkdirAll(filepath.Dir(out), 0o750))
				if c.flag == "--zstd" {
					sh(t, "tar", "--zstd", "-C", src, "-cf", out, "data")
				} else {
					sh(t, "tar", "-C", src, "-czf", out, "data")
				}
				must(t, os.Chtimes(out, when, when))
				return out
			}
			good := mk(30)
			sidecar(t, good)
			tree(t, filepath.Join(src, "data"), "new")
			bad := mk(2)
			fi, err := os.Stat(bad)
			must(t, err)
			must(t, os.Truncate(bad, fi.Size()/2))
			_, when := stamp(2)
			must(t, os.Chtimes(bad, when, when))
			sidecar(t, bad)
			res := x.restore(t, "acme")
			if used := backupUsed(res, "data"); used != good {
				t.Fatalf("restore used %q, want the older good %s: %v / %v", used, good, res["msg"], recoveryOf(res)["data"])
			}
			if got := digest(t, x.data("acme")); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("acme's data is not the good backup's")
			}
			if !strings.Contains(fmt.Sprint(recoveryOf(res)["data"]["refused"]), bad) {
				t.Errorf("the truncated backup is not named as refused")
			}
			b, _ := recoveryOf(res)["data"]["backup"].(map[string]any)
			if age, _ := b["age_seconds"].(float64); age < 29*3600 {
				t.Errorf("the age reported is %v s, want about 30 h", b["age_seconds"])
			}
		})
	}
}

// TestSidecarThatLies attacks "a forged backup is never used": the newest
// backup is a well-formed tar of other content whose sidecar holds the
// checksum of another file (the good backup), or names another file.
func TestSidecarThatLies(t *testing.T) {
	for _, mode := range []string{"hash of another file", "names another file", "empty", "two lines"} {
		t.Run(mode, func(t *testing.T) {
			x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz\n    checksum: sha256_sidecar", "")
			good, want := x.goodBackup(t, "acme", "acme", 30)
			sidecar(t, good)
			bad, _ := x.goodBackup(t, "acme", "forged", 2)
			gs, err := os.ReadFile(good + ".sha256")
			must(t, err)
			hash := strings.Fields(string(gs))[0]
			sidecar(t, bad)
			bs, err := os.ReadFile(bad + ".sha256")
			must(t, err)
			var line string
			switch mode {
			case "hash of another file":
				line = hash + "  " + filepath.Base(bad) + "\n"
			case "names another file":
				line = hash + "  " + filepath.Base(good) + "\n"
			case "empty":
				line = ""
			case "two lines":
				line = hash + "  " + filepath.Base(bad) + "\n" + string(bs)
			}
			must(t, os.WriteFile(bad+".sha256", []byte(line), 0o644))
			res := x.restore(t, "acme")
			if used := backupUsed(res, "data"); used != good {
				t.Errorf("restore used %q, want the older good %s: %v", used, good, recoveryOf(res)["data"])
			}
			if got := digest(t, x.data("acme")); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("acme's data is the forged backup's content")
			}
		})
	}
}

// TestPresentComponentIsNeverReplacedWithoutForce attacks "by default only
// missing components come back": acme's data directory is present but
// partly destroyed (files removed, the directory kept), or replaced by a
// symbolic link; acme's database exists but is empty. A default restore
// must leave each as it is (and say so); it must never write through the
// link.
func TestPresentComponentIsNeverReplacedWithoutForce(t *testing.T) {
	t.Run("partly destroyed directory", func(t *testing.T) {
		x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
		x.goodBackup(t, "acme", "acme", 2)
		tree(t, x.data("acme"), "live")
		must(t, os.Remove(filepath.Join(x.data("acme"), "a.txt")))
		before := digest(t, x.data("acme"))
		res := x.restore(t, "acme")
		if got := digest(t, x.data("acme")); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Errorf("a present, partly destroyed component was changed without force: %v", res["msg"])
		}
		if res["changed"] != false || status(res, "data") != "present" {
			t.Errorf("want changed false and status present, got changed=%v status=%s", res["changed"], status(res, "data"))
		}
	})
	t.Run("component replaced by a symlink", func(t *testing.T) {
		x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
		x.goodBackup(t, "acme", "acme", 2)
		outside := filepath.Join(x.root, "outside")
		must(t, os.MkdirAll(outside, 0o755))
		must(t, os.MkdirAll(filepath.Dir(x.data("acme")), 0o755))
		must(t, os.Symlink(outside, x.data("acme")))
		for _, force := range []bool{false, true} {
			archives := filepath.Join(x.root, "archives")
			must(t, os.MkdirAll(archives, 0o700))
			res := x.restore(t, "acme", "force", force, "archive_dir", archives)
			t.Logf("force=%v: failed=%v changed=%v msg=%v", force, res["failed"], res["changed"], res["msg"])
			if !force && res["failed"] != true && status(res, "data") == "present" {
				t.Errorf("acme's data is a symbolic link to %s (force refuses it as such) but the default run calls it present and succeeds with %q", outside, res["msg"])
			}
			if got := listDir(t, outside); len(got) > 1 {
				t.Errorf("force=%v: the restore wrote through the symlink that replaced acme's data, into %s: %v", force, outside, got)
			}
		}
	})
	t.Run("empty database", func(t *testing.T) {
		x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_custom")
		tree(t, x.data("acme"), "acme")
		src := x.dbName("acme")
		x.createDB(t, src, "CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 10);")
		st, when := stamp(2)
		out := filepath.Join(x.root, "bk", "acme", "db-"+st+".dump")
		must(t, os.MkdirAll(filepath.Dir(out), 0o750))
		c := exec.Command("pg_dump", "--format=custom", "--file="+out, "--dbname="+src)
		c.Env = append(os.Environ(), x.pg.Env()...)
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("pg_dump: %v: %s", err, b)
		}
		must(t, os.Chtimes(out, when, when))
		x.psql(t, src, "DROP TABLE t; CREATE TABLE marker (note text); INSERT INTO marker VALUES ('live');")
		res := x.restore(t, "acme")
		t.Logf("failed=%v changed=%v msg=%v db=%v", res["failed"], res["changed"], res["msg"], recoveryOf(res)["database"])
		if got := x.psql(t, src, "SELECT count(*) FROM pg_tables WHERE tablename = 'marker'"); got != "1" {
			t.Errorf("acme's present database (one table of its own) was replaced without force")
		}
	})
}

// dbNames lists the server's databases whose name holds the fixture's app.
func (x *fx) dbNames(t *testing.T) string {
	t.Helper()
	return x.psql(t, "postgres", fmt.Sprintf("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE strpos(datname, '%s') > 0", x.app))
}

// customDump dumps a new database of acme (rows rows) with pg_dump -Fc
// into acme's backups, hoursAgo old, then drops it unless keep.
func (x *fx) customDump(t *testing.T, name string, rows, hoursAgo int, keep bool) string {
	t.Helper()
	src := x.dbName(name)
	x.createDB(t, src, fmt.Sprintf("CREATE TABLE t (i int, s text); INSERT INTO t SELECT g, repeat('x', 50) FROM generate_series(1, %d) g;", rows))
	st, when := stamp(hoursAgo)
	out := filepath.Join(x.root, "bk", name, "db-"+st+".dump")
	must(t, os.MkdirAll(filepath.Dir(out), 0o750))
	c := exec.Command("pg_dump", "--format=custom", "--file="+out, "--dbname="+src)
	c.Env = append(os.Environ(), x.pg.Env()...)
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, b)
	}
	must(t, os.Chtimes(out, when, when))
	if !keep {
		x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", src))
	}
	return out
}

// TestCheckModeChangesNothing attacks "check mode changes nothing": the
// whole instance is gone (its directory too) and its database; check
// mode must create no directory, no staging database, and say what it
// would do (changed true).
func TestCheckModeChangesNothing(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_custom")
	x.goodBackup(t, "acme", "acme", 2)
	x.customDump(t, "acme", 100, 2, false)
	before, dbs := digest(t, x.root), x.dbNames(t)
	res := x.restore(t, "acme", "_ansible_check_mode", true)
	if res["failed"] != false || res["changed"] != true {
		t.Errorf("check mode: want failed false, changed true (it would restore), got %v %v: %v", res["failed"], res["changed"], res["msg"])
	}
	if got := digest(t, x.root); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("check mode changed the file system")
	}
	if got := x.dbNames(t); got != dbs {
		t.Errorf("check mode changed the databases: %q -> %q", dbs, got)
	}
}

// TestForceKeepsTheReplacedAside attacks "with force the replaced one is
// kept aside, recoverable": acme's data and database are present and
// differ from the backup; a forced restore replaces both and must keep
// the present ones, whole, where the result says.
func TestForceKeepsTheReplacedAside(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_custom")
	_, want := x.goodBackup(t, "acme", "acme", 2)
	x.customDump(t, "acme", 100, 2, true)
	x.psql(t, x.dbName("acme"), "INSERT INTO t VALUES (-1, 'live only')")
	tree(t, x.data("acme"), "live")
	must(t, os.WriteFile(filepath.Join(x.data("acme"), "live-only"), []byte("precious\n"), 0o600))
	live := digest(t, x.data("acme"))
	archives := filepath.Join(x.root, "archives")
	must(t, os.MkdirAll(archives, 0o700))
	res := x.restore(t, "acme", "force", true, "archive_dir", archives)
	if res["failed"] != false || res["changed"] != true {
		t.Fatalf("forced restore: %v %v %v", res["failed"], res["changed"], res["msg"])
	}
	if got := digest(t, x.data("acme")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("data is not the backup's after a forced restore")
	}
	replaced, _ := res["replaced"].([]any)
	seen := map[string]string{}
	for _, r := range replaced {
		m, _ := r.(map[string]any)
		seen[fmt.Sprint(m["component"])] = fmt.Sprint(m["to"])
	}
	if to := seen["data"]; to == "" {
		t.Errorf("the replaced data is not reported: %v", res["replaced"])
	} else if got := digest(t, to); fmt.Sprint(got) != fmt.Sprint(live) {
		t.Errorf("the replaced data kept at %s is not the live data that was replaced", to)
	}
	if to := seen["database"]; to == "" {
		t.Errorf("the replaced database is not reported: %v", res["replaced"])
	} else if got := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_database WHERE datname = '%s'", to)); got != "1" {
		t.Errorf("the replaced database is reported kept as %q, which does not exist", to)
	} else {
		x.psql(t, "postgres", fmt.Sprintf("ALTER DATABASE %q ALLOW_CONNECTIONS true", to))
		if got := x.psql(t, to, "SELECT count(*) FROM t WHERE i = -1"); got != "1" {
			t.Errorf("the replaced database kept as %s lost its live row", to)
		}
	}
	if got := x.psql(t, x.dbName("acme"), "SELECT count(*) FROM t"); got != "100" {
		t.Errorf("the restored database holds %s rows, want the backup's 100", got)
	}
}

// TestTwoRunsAtOnce attacks "complete or absent, even with two runs at
// once": two restores of one instance at once, and restores of two
// instances whose components share a parent directory (srv/<app>/{name})
// at once; every component ends complete, nothing half-done, no staging
// left, no run claims success over what it did not do.
func TestTwoRunsAtOnce(t *testing.T) {
	t.Run("one instance", func(t *testing.T) {
		x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
		_, want := x.goodBackup(t, "acme", "acme", 2)
		for i := range 5 {
			must(t, os.RemoveAll(x.data("acme")))
			var wg sync.WaitGroup
			res := make([]map[string]any, 2)
			for j := range 2 {
				wg.Add(1)
				go func() { defer wg.Done(); res[j] = x.restore(t, "acme") }()
			}
			wg.Wait()
			if got := digest(t, x.data("acme")); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("round %d: data is not complete after two runs at once", i)
			}
			restored := 0
			for _, r := range res {
				if r["failed"] == false && status(r, "data") == "restored" {
					restored++
				}
			}
			if restored != 1 {
				t.Errorf("round %d: %d runs say they restored data: %v / %v", i, restored, res[0]["msg"], res[1]["msg"])
			}
			noStaging(t, filepath.Dir(x.data("acme")))
		}
	})
	t.Run("two instances sharing a parent", func(t *testing.T) {
		x := newFxPath(t, "srv/shared/{name}", "bk/{name}/data-*.tar.gz", "tar_gz", "")
		names := []string{"a", "a-b", "a-b-c"} // each name a prefix of the next
		want := map[string]map[string]string{}
		for _, n := range names {
			_, want[n] = x.goodBackup(t, n, n, 2)
		}
		for i := range 3 {
			_ = os.RemoveAll(filepath.Join(x.root, "srv"))
			var wg sync.WaitGroup
			res := make([]map[string]any, len(names))
			for j, n := range names {
				wg.Add(1)
				go func() { defer wg.Done(); res[j] = x.restore(t, n) }()
			}
			wg.Wait()
			for j, n := range names {
				if res[j]["failed"] != false {
					t.Errorf("round %d: restore of %s failed: %v", i, n, res[j]["msg"])
				}
				if got := digest(t, x.data(n)); fmt.Sprint(got) != fmt.Sprint(want[n]) {
					t.Errorf("round %d: %s is not its backup's: %v", i, n, got)
				}
			}
			noStaging(t, filepath.Join(x.root, "srv", "shared"))
		}
	})
}

// noStaging fails when dir holds fleetsafe's staging leftovers.
func noStaging(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".fleetsafe-") && e.Name() != ".fleetsafe-trash" {
			t.Errorf("staging left in %s: %s", dir, e.Name())
		}
	}
}

// TestKilledAtRandomInstants attacks "complete or absent per component,
// even after SIGKILL at any instant": a restore of acme's data (400
// files) and database is killed at a random instant; after each kill
// each component is absent or exactly its backup, and a re-run converges
// with no staging directory or database left.
func TestKilledAtRandomInstants(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_custom")
	src := filepath.Join(t.TempDir(), "src")
	tree(t, filepath.Join(src, "data"), "acme")
	for i := range 400 {
		must(t, os.WriteFile(filepath.Join(src, "data", fmt.Sprintf("f%03d", i)), []byte(strings.Repeat(fmt.Sprint(i), 100)), 0o644))
	}
	want := digest(t, filepath.Join(src, "data"))
	st, when := stamp(2)
	tarOf(t, src, "data", filepath.Join(x.root, "bk", "acme", "data-"+st+".tar.gz"), when)
	x.customDump(t, "acme", 500, 2, false)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	check := func(round int, after string) {
		if _, err := os.Lstat(x.data("acme")); err == nil {
			if got := digest(t, x.data("acme")); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("round %d, %s: data is present but not its backup (%d entries of %d)", round, after, len(got), len(want))
			}
		}
		if x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_database WHERE datname = '%s'", x.dbName("acme"))) == "1" {
			if got := x.psql(t, x.dbName("acme"), "SELECT count(*) FROM t"); got != "500" {
				t.Errorf("round %d, %s: the database is present with %s rows of 500", round, after, got)
			}
		}
	}
	for round := range 3 {
		must(t, os.RemoveAll(filepath.Join(x.root, "srv")))
		x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE IF EXISTS %q", x.dbName("acme")))
		c := x.cmd(t, "acme", nil)
		must(t, c.Start())
		d := time.Duration(rng.IntN(300)) * time.Millisecond
		time.Sleep(d)
		_ = c.Process.Signal(syscall.SIGKILL)
		_ = c.Wait()
		check(round, fmt.Sprintf("killed after %v", d))
		res := x.restore(t, "acme")
		if res["failed"] != false {
			t.Errorf("round %d: the re-run after a kill at %v failed: %v", round, d, res["msg"])
		}
		check(round, "re-run")
		if _, err := os.Lstat(x.data("acme")); err != nil {
			t.Errorf("round %d: data absent after the re-run", round)
		}
		noStaging(t, filepath.Dir(x.data("acme")))
		if got := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_database WHERE datname LIKE 'fsrestore%%' AND strpos(datname, '%s') > 0", x.app)); got != "0" {
			t.Errorf("round %d: %s staging database(s) left after the re-run", round, got)
		}
	}
}

// TestFullDiskDuringExtraction attacks "complete or absent, even on a full
// disk", and "failures say what state was left": acme's data goes on a
// 1 MiB tmpfs; its only backup holds 3 MiB of incompressible data in
// small files (no single entry too large to be refused up front).
func TestFullDiskDuringExtraction(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
	parent := filepath.Dir(x.data("acme"))
	must(t, os.MkdirAll(parent, 0o755))
	must(t, syscall.Mount("tmpfs", parent, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { _ = syscall.Unmount(parent, syscall.MNT_DETACH) })
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(filepath.Join(src, "data"), 0o755))
	buf := make([]byte, 64<<10)
	for i := range 48 {
		_, _ = crand.Read(buf)
		must(t, os.WriteFile(filepath.Join(src, "data", fmt.Sprintf("r%02d", i)), buf, 0o644))
	}
	st, when := stamp(2)
	tarOf(t, src, "data", filepath.Join(x.root, "bk", "acme", "data-"+st+".tar.gz"), when)
	res := x.restore(t, "acme")
	t.Logf("failed=%v changed=%v msg=%v data=%v", res["failed"], res["changed"], res["msg"], recoveryOf(res)["data"])
	if res["failed"] != true {
		t.Errorf("a restore that cannot fit says it succeeded: %v", res["msg"])
	}
	if _, err := os.Lstat(x.data("acme")); err == nil {
		t.Errorf("a half-extracted data directory was put in place: %v", listDir(t, x.data("acme"))[:3])
	}
	noStaging(t, parent)
	if msg := fmt.Sprint(res["msg"]); !strings.Contains(msg, "absent") && !strings.Contains(msg, "not restored") {
		t.Errorf("the failure does not say what state it left: %s", msg)
	}
}

// TestBackupThatIsAFIFO attacks "a broken or hostile backup is refused,
// named, and the next older good one used": the newest file the rule
// matches is a FIFO nobody writes to. The restore must not hang on it.
func TestBackupThatIsAFIFO(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
	good, _ := x.goodBackup(t, "acme", "acme", 30)
	st, _ := stamp(1)
	fifo := filepath.Join(x.root, "bk", "acme", "data-"+st+".tar.gz")
	must(t, syscall.Mkfifo(fifo, 0o644))
	c := x.cmd(t, "acme", nil)
	var out strings.Builder
	c.Stdout = &out
	must(t, c.Start())
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute): // a hang is for ever; a loaded machine's slow run is not one
		_ = c.Process.Kill()
		<-done
		t.Fatalf("the restore hung for 2 minutes on a FIFO named like a backup (%s)", fifo)
	}
	var res map[string]any
	must(t, json.Unmarshal([]byte(out.String()), &res))
	if used := backupUsed(res, "data"); used != good {
		t.Errorf("restore used %q, want the older good %s: %v", used, good, res["msg"])
	}
}

// TestBackupSwappedWhileRead attacks "a forged backup is never used"
// through a time-of-check/time-of-use race: the newest backup is renamed
// back and forth between the good file its sidecar vouches for and a
// well-formed forged tar of other content, while restores run. A restore
// must never put the forged content in place.
func TestBackupSwappedWhileRead(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz\n    checksum: sha256_sidecar", "")
	good, want := x.goodBackup(t, "acme", "acme", 2)
	sidecar(t, good)
	spare := t.TempDir()
	goodCopy, forged := filepath.Join(spare, "good"), filepath.Join(spare, "forged")
	sh(t, "cp", "-p", good, goodCopy)
	src := filepath.Join(t.TempDir(), "src")
	tree(t, filepath.Join(src, "data"), "forged")
	fi, err := os.Stat(good)
	must(t, err)
	tarOf(t, src, "data", forged, fi.ModTime())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				sh(t, "cp", "-p", goodCopy, good)
				return
			default:
			}
			from := goodCopy
			if i%2 == 1 {
				from = forged
			}
			tmp := good + ".swap"
			_ = exec.Command("cp", "-p", from, tmp).Run()
			_ = os.Rename(tmp, good)
			time.Sleep(time.Duration(i%3) * time.Millisecond)
		}
	}()
	forgedSeen, runs := 0, 0
	for deadline := time.Now().Add(6 * time.Second); runs < 150 && forgedSeen == 0 && time.Now().Before(deadline); runs++ {
		_ = os.RemoveAll(x.data("acme"))
		res := x.restore(t, "acme")
		if res["failed"] == false && status(res, "data") == "restored" {
			if got := digest(t, x.data("acme")); fmt.Sprint(got) != fmt.Sprint(want) {
				forgedSeen++
			}
		}
	}
	close(stop)
	wg.Wait()
	if forgedSeen > 0 {
		t.Errorf("restore %d put the forged content in place although the sidecar vouches only for the good file: the file extracted is not the one whose checksum was checked", runs)
	}
}

// TestFullDiskFallsBackToOlderData attacks "a broken, forged or hostile
// backup is never used ... nothing is guessed" from the other side: a good
// newest backup that does not fit on the component's filesystem (a 1 MiB
// tmpfs) is not broken; the restore must not call it refused and quietly
// bring back an older, smaller backup (a day of data lost to a full disk)
// as a success.
func TestFullDiskFallsBackToOlderData(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
	old, _ := x.goodBackup(t, "acme", "yesterday", 30)
	parent := filepath.Dir(x.data("acme"))
	must(t, os.MkdirAll(parent, 0o755))
	must(t, syscall.Mount("tmpfs", parent, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { _ = syscall.Unmount(parent, syscall.MNT_DETACH) })
	src := filepath.Join(t.TempDir(), "src")
	tree(t, filepath.Join(src, "data"), "today")
	buf := make([]byte, 64<<10)
	for i := range 24 {
		_, _ = crand.Read(buf)
		must(t, os.WriteFile(filepath.Join(src, "data", fmt.Sprintf("r%02d", i)), buf, 0o644))
	}
	st, when := stamp(2)
	newest := filepath.Join(x.root, "bk", "acme", "data-"+st+".tar.gz")
	tarOf(t, src, "data", newest, when)
	res := x.restore(t, "acme")
	t.Logf("failed=%v changed=%v msg=%v notes=%v", res["failed"], res["changed"], res["msg"], res["notes"])
	if res["failed"] == false && backupUsed(res, "data") == old {
		t.Errorf("the newest backup %s is good but did not fit on the disk; the restore called it refused and succeeded with the backup of 30 h ago (%s): a full disk silently cost a day of data", newest, old)
	}
}

// craftZip writes a zip of entries (Go's archive/zip, for names the zip
// tool refuses to write) at out, dated when.
func craftZip(t *testing.T, out string, when time.Time, names ...string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(out), 0o750))
	f, err := os.Create(out)
	must(t, err)
	zw := zip.NewWriter(f)
	for _, n := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Deflate, Modified: when})
		must(t, err)
		if !strings.HasSuffix(n, "/") {
			_, err = w.Write([]byte("zip " + n))
			must(t, err)
		}
	}
	must(t, zw.Close())
	must(t, f.Close())
	must(t, os.Chtimes(out, when, when))
}

// TestHostileZipNeverWritesOutside attacks "nothing outside the
// component's location is ever touched" with zip backups: absolute
// names, `..`, backslashes, an entry of another instance; the older good
// zip (made by the zip tool) must be used.
func TestHostileZipNeverWritesOutside(t *testing.T) {
	cases := map[string][]string{
		"absolute":       {"data/", "data/a", "/tmp/attack3-zip-escape"},
		"dot dot":        {"data/", "data/a", "data/../../escape"},
		"dot slash up":   {"./", "./a", "./../escape"},
		"backslash up":   {"data/", "data/a", "data\\..\\..\\escape"},
		"other instance": {"data/", "data/a", "../bob/data/a"},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			x := newFx(t, "bk/{name}/data-*.zip", "zip", "")
			src := filepath.Join(t.TempDir(), "src")
			tree(t, filepath.Join(src, "data"), "acme")
			want := digest(t, filepath.Join(src, "data"))
			st, when := stamp(30)
			good := filepath.Join(x.root, "bk", "acme", "data-"+st+".zip")
			must(t, os.MkdirAll(filepath.Dir(good), 0o750))
			c := exec.Command("zip", "-qr", good, "data")
			c.Dir = src
			if b, err := c.CombinedOutput(); err != nil {
				t.Fatalf("zip: %v: %s", err, b)
			}
			must(t, os.Chtimes(good, when, when))
			before := digest(t, x.root)
			st, when = stamp(2)
			bad := filepath.Join(x.root, "bk", "acme", "data-"+st+".zip")
			craftZip(t, bad, when, entries...)
			res := x.restore(t, "acme")
			if used := backupUsed(res, "data"); used != good {
				t.Errorf("restore used %q, want the older good zip %s: %v / %v", used, good, res["msg"], recoveryOf(res)["data"])
			}
			got := digest(t, x.data("acme"))
			for p := range want { // zip keeps no owner or exact dir modes: compare names and contents
				if p != "." && !strings.HasPrefix(got[p], strings.SplitN(want[p], " ", 2)[0][:1]) {
					t.Errorf("%s: got %q want %q", p, got[p], want[p])
				}
			}
			after := digest(t, x.root)
			acme := filepath.Join("srv", x.app, "acme")
			for p := range after {
				if _, ok := before[p]; !ok && !strings.HasPrefix(p, acme) && !strings.HasPrefix(acme, p) && !strings.HasPrefix(p, "bk/") {
					t.Errorf("%s was written outside acme's component", p)
				}
			}
			for _, p := range []string{"/tmp/attack3-zip-escape", filepath.Join(x.root, "escape"), filepath.Join(x.root, "srv", x.app, "escape")} {
				if _, err := os.Lstat(p); err == nil {
					_ = os.Remove(p)
					t.Errorf("%s was written", p)
				}
			}
		})
	}
}

// TestDumpOfAnotherDatabase attacks "a forged backup is never used": in
// acme's backup directory, a real pg_dump -Fc of bob's database (newest),
// and a plain dump with psql's \connect to another database; acme's own
// older dump must be used and bob's data never land in acme.
func TestDumpOfAnotherDatabase(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_custom")
	tree(t, x.data("acme"), "acme")
	own := x.customDump(t, "acme", 10, 30, false)
	bobs := x.customDump(t, "bob", 77, 60, true)
	st, when := stamp(2)
	planted := filepath.Join(x.root, "bk", "acme", "db-"+st+".dump")
	sh(t, "cp", bobs, planted)
	must(t, os.Chtimes(planted, when, when))
	res := x.restore(t, "acme")
	if used := backupUsed(res, "database"); used != own {
		t.Errorf("restore of acme's database used %q, want its own %s: %v", used, own, recoveryOf(res)["database"])
	}
	if got := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_database WHERE datname = '%s'", x.dbName("acme"))); got == "1" {
		if n := x.psql(t, x.dbName("acme"), "SELECT count(*) FROM t"); n != "10" {
			t.Errorf("acme's database holds %s rows: bob's dump (77 rows) was restored as acme's", n)
		}
	}
}

// TestRecoverInventsAnInstanceFromAnotherInstancesBackup attacks "only the
// named instance's components are ever written" and the inventory of the
// damage through `fleetsafe recover` on one host: with the rule
// bk/data-{name}-*.tar.gz, the only backup is data-a-b-<stamp>.tar.gz,
// instance a-b's (gone). No instance "a" ever existed; the plan must not
// list one, and recover --confirm must not create it from a-b's backup.
func TestRecoverInventsAnInstanceFromAnotherInstancesBackup(t *testing.T) {
	x := newFx(t, "bk/data-{name}-*.tar.gz", "tar_gz", "")
	src := t.TempDir()
	tree(t, filepath.Join(src, "a-b", "data"), "a-b")
	st, when := stamp(2)
	tarOf(t, filepath.Join(src, "a-b"), "data", filepath.Join(x.root, "bk", "data-a-b-"+st+".tar.gz"), when)
	bin := filepath.Join(library(t), "fleetsafe")
	layoutsDir := t.TempDir()
	plan, err := exec.Command(bin, "recover", "--layout-file", x.layout, "--layouts-dir", layoutsDir, "--json").Output()
	var p map[string]any
	if jerr := json.Unmarshal(plan, &p); jerr != nil {
		t.Fatalf("recover: %v %v: %s", err, jerr, plan)
	}
	if dmg, _ := json.Marshal(p["damaged"]); strings.Contains(string(dmg), `"name":"a"`) {
		t.Errorf("the plan lists an instance \"a\" that never existed, from a-b's backup: %s", dmg)
	}
	_, err = exec.Command(bin, "recover", "--layout-file", x.layout, "--layouts-dir", layoutsDir, "--confirm", "--json").CombinedOutput()
	_ = err // the exit status is the table's; what matters is what was written
	if _, err := os.Lstat(filepath.Join(x.root, "srv", x.app, "a")); err == nil {
		t.Errorf("recover --confirm created an instance \"a\" that never existed, from instance a-b's backup: %v", listDir(t, filepath.Join(x.root, "srv", x.app, "a")))
	}
}

// TestSymlinkedBackupNeverCreditsAnotherInstance attacks "each backup file
// is credited to exactly one instance": acme's backup directory is a
// symbolic link to bob's, or acme's backup file a link to bob's. Bob's
// data must never become acme's.
func TestSymlinkedBackupNeverCreditsAnotherInstance(t *testing.T) {
	for _, mode := range []string{"directory", "file"} {
		t.Run(mode, func(t *testing.T) {
			x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
			bobs, _ := x.goodBackup(t, "bob", "bob", 2)
			switch mode {
			case "directory":
				must(t, os.Symlink("bob", filepath.Join(x.root, "bk", "acme")))
			case "file":
				must(t, os.MkdirAll(filepath.Join(x.root, "bk", "acme"), 0o750))
				must(t, os.Symlink(bobs, filepath.Join(x.root, "bk", "acme", filepath.Base(bobs))))
			}
			res := x.restore(t, "acme")
			if b, err := os.ReadFile(filepath.Join(x.data("acme"), "a.txt")); err == nil && strings.Contains(string(b), "bob") {
				t.Errorf("acme was restored with bob's data through a symlinked backup %s: %v", mode, res["msg"])
			}
		})
	}
}

// TestPlainDumpWithAFailingStatementIsNotHalfLoaded attacks "complete or
// absent (never a half-loaded database left in place)": acme's newest
// plain dump (real pg_dump output) holds a statement that fails in the
// middle (a table of a type the server does not have), the tables after
// it load fine; the older dump is good. The half-loaded dump must be
// refused and the older one used, or nothing put in place.
func TestPlainDumpWithAFailingStatementIsNotHalfLoaded(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_plain")
	tree(t, x.data("acme"), "acme")
	src := x.dbName("acme")
	x.createDB(t, src, "CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 10);")
	st, when := stamp(30)
	old := filepath.Join(x.root, "bk", "acme", "db-"+st+".sql")
	x.plainDumpOf(t, src, old, "")
	must(t, os.Chtimes(old, when, when))
	x.psql(t, src, "INSERT INTO t SELECT generate_series(11, 20);")
	st, when = stamp(2)
	bad := filepath.Join(x.root, "bk", "acme", "db-"+st+".sql")
	x.plainDumpOf(t, src, bad, "CREATE TABLE lost (x no_such_type);\nCREATE TABLE after_failure (i int);")
	must(t, os.Chtimes(bad, when, when))
	x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", src))
	res := x.restore(t, "acme")
	t.Logf("failed=%v msg=%v db=%v", res["failed"], res["msg"], recoveryOf(res)["database"])
	if x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_database WHERE datname = '%s'", src)) != "1" {
		return // absent: the promise holds (the result must then say so)
	}
	if got := x.psql(t, src, "SELECT count(*) FROM pg_tables WHERE tablename = 'after_failure'"); got == "1" {
		t.Errorf("acme's database was put in place from %s, whose statement failed half-way (table lost missing, the rest loaded): a half-loaded database restored (status %s)", bad, status(res, "database"))
	}
	if used := backupUsed(res, "database"); used != old {
		t.Errorf("restore used %q, want the older good dump %s", used, old)
	}
}

// TestFileComponentFromALink attacks "nothing outside the component's
// location is ever touched" for a file component: its newest backup's one
// entry is a symbolic link (to /etc/passwd, or up and out), or a hard
// link to a file outside; the component must never become a way out, and
// the older good backup (a tar of the file) is used.
func TestFileComponentFromALink(t *testing.T) {
	cases := map[string]tEntry{
		"symlink absolute": {name: "conf.ini", typ: tar.TypeSymlink, link: "/etc/passwd"},
		"symlink up":       {name: "conf.ini", typ: tar.TypeSymlink, link: "../../outside/secret"},
		"hard link out":    {name: "conf.ini", typ: tar.TypeLink, link: "/etc/passwd"},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			app := fleettest.RandomApp()
			layout := filepath.Join(root, "layout.yml")
			must(t, os.WriteFile(layout, []byte(fmt.Sprintf("app: %s\ncomponents:\n  - name: conf\n    type: file\n    path: %s/srv/%s/{name}/conf.ini\nbackups:\n  - component: conf\n    path: %s/bk/{name}/conf-*.tar.gz\n    format: tar_gz\n", app, root, app, root)), 0o644))
			x := &fx{root: root, app: app, layout: layout, dataPath: filepath.Join(root, "srv", app, "{name}", "conf.ini")}
			src := t.TempDir()
			must(t, os.WriteFile(filepath.Join(src, "conf.ini"), []byte("good\n"), 0o640))
			st, when := stamp(30)
			good := filepath.Join(root, "bk", "acme", "conf-"+st+".tar.gz")
			tarOf(t, src, "conf.ini", good, when)
			st, when = stamp(2)
			craftTarGz(t, filepath.Join(root, "bk", "acme", "conf-"+st+".tar.gz"), when, e)
			res := x.restore(t, "acme")
			fi, err := os.Lstat(x.data("acme"))
			switch {
			case err != nil:
				t.Errorf("conf not restored: %v", res["msg"])
			case !fi.Mode().IsRegular():
				t.Errorf("the file component was restored as %v (from a %s entry): a way out of the instance", fi.Mode(), name)
			case fi.Sys().(*syscall.Stat_t).Nlink > 1:
				t.Errorf("the file component was restored as a hard link shared with another file")
			}
			if used := backupUsed(res, "conf"); used != good {
				t.Errorf("restore used %q, want the older good %s", used, good)
			}
		})
	}
}

// TestUnknownComponentIsNotNothingToDo attacks "results are honest": a
// restore narrowed to a component the layout does not have (a typo) must
// fail naming it, not answer "nothing to restore".
func TestUnknownComponentIsNotNothingToDo(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
	x.goodBackup(t, "acme", "acme", 2)
	res := x.restore(t, "acme", "components", []string{"dtaa"})
	if res["failed"] != true {
		t.Errorf("components [dtaa] (no such component) answered failed=%v: %v; data is still missing", res["failed"], res["msg"])
	}
}

// liveRowSomewhere says whether a database of the fixture's app (in place
// or kept aside under any name) still holds the live-only row.
func (x *fx) liveRowSomewhere(t *testing.T) bool {
	t.Helper()
	for _, db := range strings.Split(x.dbNames(t), ",") {
		if db == "" {
			continue
		}
		closed := x.psql(t, "postgres", fmt.Sprintf("SELECT NOT datallowconn FROM pg_database WHERE datname = '%s'", db)) == "t"
		if closed {
			x.psql(t, "postgres", fmt.Sprintf("ALTER DATABASE %q ALLOW_CONNECTIONS true", db))
		}
		c := exec.Command("psql", "-X", "-At", "-d", db, "-c", "SELECT count(*) FROM t WHERE i = -1")
		c.Env = append(os.Environ(), x.pg.Env()...)
		out, _ := c.Output()
		if closed {
			x.psql(t, "postgres", fmt.Sprintf("ALTER DATABASE %q ALLOW_CONNECTIONS false", db))
		}
		if strings.TrimSpace(string(out)) == "1" {
			return true
		}
	}
	return false
}

// liveFileSomewhere says whether the live-only file is still somewhere
// under root outside the backups (in place or kept aside).
func (x *fx) liveFileSomewhere(t *testing.T) bool {
	t.Helper()
	found := false
	_ = filepath.WalkDir(x.root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "live-only" {
			if b, _ := os.ReadFile(p); string(b) == "precious\n" {
				found = true
			}
		}
		return nil
	})
	return found
}

// TestForcedRestoreKilledLosesNothing attacks "with force the replaced one
// is kept aside, recoverable", under SIGKILL at a random instant: the
// present data (with a file only it has) and database (with a row only it
// has) must, after the kill and after the re-run, still exist somewhere:
// in place or kept aside.
func TestForcedRestoreKilledLosesNothing(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_custom")
	x.goodBackup(t, "acme", "acme", 2)
	x.customDump(t, "acme", 500, 2, false)
	archives := filepath.Join(x.root, "archives")
	must(t, os.MkdirAll(archives, 0o700))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	for round := range 3 {
		// The live instance: data with a file only it has, a database
		// with a row only it has.
		must(t, os.RemoveAll(filepath.Join(x.root, "srv")))
		_ = os.RemoveAll(archives)
		must(t, os.MkdirAll(archives, 0o700))
		for _, db := range strings.Split(x.dbNames(t), ",") {
			if db != "" {
				x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q WITH (FORCE)", db))
			}
		}
		tree(t, x.data("acme"), "live")
		must(t, os.WriteFile(filepath.Join(x.data("acme"), "live-only"), []byte("precious\n"), 0o600))
		x.createDB(t, x.dbName("acme"), "CREATE TABLE t (i int, s text); INSERT INTO t VALUES (-1, 'live only');")
		c := x.cmd(t, "acme", nil, "force", true, "archive_dir", archives)
		must(t, c.Start())
		d := time.Duration(rng.IntN(700)) * time.Millisecond
		time.Sleep(d)
		_ = c.Process.Signal(syscall.SIGKILL)
		_ = c.Wait()
		if !x.liveFileSomewhere(t) {
			t.Errorf("round %d, killed after %v: the live data replaced by force is nowhere (neither in place nor kept aside)", round, d)
		}
		if !x.liveRowSomewhere(t) {
			t.Errorf("round %d, killed after %v: the live database replaced by force is nowhere", round, d)
		}
		res := x.restore(t, "acme", "force", true, "archive_dir", archives)
		if res["failed"] != false {
			t.Errorf("round %d: the re-run after a kill at %v failed: %v", round, d, res["msg"])
		}
		if !x.liveFileSomewhere(t) || !x.liveRowSomewhere(t) {
			t.Errorf("round %d: after the re-run the live data or database replaced by force is nowhere", round)
		}
	}
}

// TestTarCutAtAnEntryBoundary attacks "a broken backup is never used;
// complete or absent": the newest backup is one whose tar was killed
// while writing (or is still being written): GNU tar's output cut after
// its 20th entry, without the end-of-archive blocks, stored as is or
// compressed by a gzip or zstd that ended its stream properly (what a
// pipeline `tar | gzip` leaves when tar dies). Nothing in it is
// malformed, but it is not the whole component; the older complete one
// must be used.
func TestTarCutAtAnEntryBoundary(t *testing.T) {
	for _, c := range []struct{ format, ext string }{{"tar", ".tar"}, {"tar_gz", ".tar.gz"}, {"tar_zst", ".tar.zst"}} {
		t.Run(c.format, func(t *testing.T) {
			x := newFx(t, "bk/{name}/data-*"+c.ext, c.format, "")
			src := filepath.Join(t.TempDir(), "src")
			tree(t, filepath.Join(src, "data"), "acme")
			for i := range 60 {
				must(t, os.WriteFile(filepath.Join(src, "data", fmt.Sprintf("f%02d", i)), []byte(strings.Repeat("z", 700+i)), 0o644))
			}
			want := digest(t, filepath.Join(src, "data"))
			st, when := stamp(30)
			good := filepath.Join(x.root, "bk", "acme", "data-"+st+c.ext)
			must(t, os.MkdirAll(filepath.Dir(good), 0o750))
			raw := filepath.Join(t.TempDir(), "full.tar")
			sh(t, "tar", "-C", src, "-cf", raw, "data")
			full, err := os.ReadFile(raw)
			must(t, err)
			compress := func(in, out string) {
				switch c.format {
				case "tar":
					sh(t, "cp", in, out)
				case "tar_gz":
					sh(t, "sh", "-c", fmt.Sprintf("gzip -c < %q > %q", in, out))
				case "tar_zst":
					sh(t, "zstd", "-q", "-f", in, "-o", out)
				}
			}
			compress(raw, good)
			must(t, os.Chtimes(good, when, when))
			// The cut: the offset just after the 20th entry of the same tar, as
			// a tar killed in a pipeline leaves it (the compressor then ends its
			// stream properly).
			tr := tar.NewReader(bytes.NewReader(full))
			cut := 0
			for n := 0; n < 20; n++ {
				h, err := tr.Next()
				must(t, err)
				cut += 512 + int((h.Size+511)/512*512)
				if h.Typeflag == tar.TypeXHeader || h.Typeflag == tar.TypeGNULongName {
					t.Skip("extended headers: the offset walk is not exact")
				}
			}
			st, when = stamp(2)
			bad := filepath.Join(x.root, "bk", "acme", "data-"+st+c.ext)
			cutRaw := filepath.Join(t.TempDir(), "cut.tar")
			must(t, os.WriteFile(cutRaw, full[:cut], 0o640))
			compress(cutRaw, bad)
			must(t, os.Chtimes(bad, when, when))
			res := x.restore(t, "acme")
			t.Logf("failed=%v msg=%v", res["failed"], res["msg"])
			if used := backupUsed(res, "data"); used == bad {
				got := digest(t, x.data("acme"))
				t.Errorf("acme's data was restored from %s, a tar cut after its 20th entry (no end-of-archive blocks): %d entries of %d came back, reported as success", bad, len(got), len(want))
			}
		})
	}
}

// TestCheckModeAnnouncesTheBackupTheRunUses attacks "results are honest"
// for the plan: check mode, and the damage inventory that
// recover_fleet.yml and `fleetsafe recover` show before confirm=true, must
// announce the backup, and so the recovery
// point, that the real run then uses. The newest backup is well-formed
// gzip holding an entry that climbs out (refused when staged); the older
// one is good.
func TestCheckModeAnnouncesTheBackupTheRunUses(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
	good, _ := x.goodBackup(t, "acme", "acme", 30)
	st, when := stamp(2)
	bad := filepath.Join(x.root, "bk", "acme", "data-"+st+".tar.gz")
	craftTarGz(t, bad, when, tEntry{name: "data/", typ: tar.TypeDir}, tEntry{name: "data/../../escape", typ: tar.TypeReg, body: "x"})
	plan := x.restore(t, "acme", "_ansible_check_mode", true)
	out, _ := exec.Command(filepath.Join(library(t), "fleetsafe"), "recover", "--layout-file", x.layout, "--layouts-dir", t.TempDir(), "--json").Output()
	var inv struct {
		Damaged []struct {
			Name       string           `json:"name"`
			Components []map[string]any `json:"components"`
		} `json:"damaged"`
	}
	if err := json.Unmarshal(out, &inv); err != nil || len(inv.Damaged) != 1 {
		t.Fatalf("fleetsafe recover: %v: %s", err, out)
	}
	invPlan := map[string]any{"recovery": []any{}}
	for _, c := range inv.Damaged[0].Components {
		invPlan["recovery"] = append(invPlan["recovery"].([]any), c)
	}
	res := x.restore(t, "acme")
	if used := backupUsed(res, "data"); used != good {
		t.Fatalf("the run used %q, want %s", used, good)
	}
	if announced := backupUsed(plan, "data"); announced != good {
		t.Errorf("check mode announced %s (2 h old) as the backup data would come from; the real run refused it and used %s (30 h old): the plan's recovery point was wrong by a day", announced, good)
	}
	if announced := backupUsed(invPlan, "data"); announced != good {
		t.Errorf("fleetsafe recover's plan (the damage inventory) announced %s (2 h old); the real run refused it and used %s (30 h old)", announced, good)
	}
}

// TestRestoredDatabaseKeepsItsOwner attacks "complete": acme's database
// belongs to the application's role (as every multi-tenant setup has it:
// in PostgreSQL 15 the owner of the database owns the public schema
// through pg_database_owner, so the application creates its tables
// there). The pg_dump -Fc archive names that owner (its DATABASE entry);
// a plain dump names the owner of every object. After a restore, the
// application's role must own the database again, or the result must say
// it does not.
func TestRestoredDatabaseKeepsItsOwner(t *testing.T) {
	for _, format := range []string{"pg_custom", "pg_plain"} {
		t.Run(format, func(t *testing.T) {
			x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", format)
			tree(t, x.data("acme"), "acme")
			role := x.app + "_owner"
			x.psql(t, "postgres", "CREATE ROLE "+role+" LOGIN")
			t.Cleanup(func() {
				_ = fleettest.DropDatabasesLike(context.Background(), x.pg, x.app)
				c := exec.Command("psql", "-X", "-d", "postgres", "-c", "DROP ROLE IF EXISTS "+role)
				c.Env = append(os.Environ(), x.pg.Env()...)
				_ = c.Run()
			})
			db := x.dbName("acme")
			x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %s", db, role))
			x.psql(t, db, fmt.Sprintf("SET ROLE %s; CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 10);", role))
			st, when := stamp(2)
			if format == "pg_custom" {
				out := filepath.Join(x.root, "bk", "acme", "db-"+st+".dump")
				must(t, os.MkdirAll(filepath.Dir(out), 0o750))
				c := exec.Command("pg_dump", "--format=custom", "--file="+out, "--dbname="+db)
				c.Env = append(os.Environ(), x.pg.Env()...)
				if b, err := c.CombinedOutput(); err != nil {
					t.Fatalf("pg_dump: %v: %s", err, b)
				}
				must(t, os.Chtimes(out, when, when))
			} else {
				out := filepath.Join(x.root, "bk", "acme", "db-"+st+".sql")
				x.plainDumpOf(t, db, out, "")
				must(t, os.Chtimes(out, when, when))
			}
			x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))
			res := x.restore(t, "acme")
			if res["failed"] != false {
				t.Fatalf("restore failed: %v", res["msg"])
			}
			owner := x.psql(t, "postgres", fmt.Sprintf("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s'", db))
			// Another owner passes only when a note names it (every restore without a layout owner notes the owner it took).
			if owner == role || (owner != "" && strings.Contains(fmt.Sprint(res["notes"]), owner)) {
				return
			}
			// What the application does after a restore: create a table.
			c := exec.Command("psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", fmt.Sprintf("SET ROLE %s; CREATE TABLE after_restore (i int);", role))
			c.Env = append(os.Environ(), x.pg.Env()...)
			b, _ := c.CombinedOutput()
			t.Errorf("acme's database was restored owned by %q, not by its owner %q, and the result says nothing of it (notes %v); the application's role creating a table: %s",
				owner, role, res["notes"], strings.TrimSpace(strings.ReplaceAll(string(b), "\n", " ")))
		})
	}
}

// TestRestoredDatabaseKeepsItsIsolation attacks "another instance is never
// touched" from the other side: on a multi-tenant host acme's database is
// closed to other tenants (REVOKE CONNECT … FROM PUBLIC, CONNECT granted
// to acme's role only), a setting pg_dump -Fc records in the archive
// (DATABASE PROPERTIES). After a restore from it, bob's role must still
// be unable to connect to acme's database, or the result must say the
// database's grants were not restored.
func TestRestoredDatabaseKeepsItsIsolation(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "pg_custom")
	tree(t, x.data("acme"), "acme")
	acmeRole, bobRole := x.app+"_acme", x.app+"_bob"
	for _, r := range []string{acmeRole, bobRole} {
		x.psql(t, "postgres", "CREATE ROLE "+r+" LOGIN")
	}
	t.Cleanup(func() {
		_ = fleettest.DropDatabasesLike(context.Background(), x.pg, x.app)
		for _, r := range []string{acmeRole, bobRole} {
			c := exec.Command("psql", "-X", "-d", "postgres", "-c", "DROP ROLE IF EXISTS "+r)
			c.Env = append(os.Environ(), x.pg.Env()...)
			_ = c.Run()
		}
	})
	db := x.dbName("acme")
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", db))
	x.psql(t, "postgres", fmt.Sprintf("REVOKE CONNECT, TEMPORARY ON DATABASE %q FROM PUBLIC; GRANT CONNECT ON DATABASE %q TO %s", db, db, acmeRole))
	x.psql(t, db, "CREATE TABLE secrets (s text); INSERT INTO secrets VALUES ('acme only');")
	canConnect := func(role string) bool {
		return x.psql(t, "postgres", fmt.Sprintf("SELECT has_database_privilege('%s', '%s', 'CONNECT')", role, db)) == "t"
	}
	if canConnect(bobRole) {
		t.Fatal("fixture: bob can connect before the restore")
	}
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
	res := x.restore(t, "acme")
	if res["failed"] != false {
		t.Fatalf("restore failed: %v", res["msg"])
	}
	if canConnect(bobRole) && !strings.Contains(strings.ToLower(fmt.Sprint(res["notes"])), "grant") {
		t.Errorf("after the restore from backups, another tenant's role (%s) can connect to acme's database: the REVOKE CONNECT … FROM PUBLIC the archive records was not restored, and the result says nothing (notes %v)", bobRole, res["notes"])
	}
	if !canConnect(acmeRole) {
		t.Errorf("after the restore, acme's own role lost CONNECT on its database")
	}
}

// TestEmptyDirectoryOfANewTenantGetsAPreviousTenantsData attacks "by
// default only missing components come back; a present component is
// never replaced without force", and "another instance's data is never
// written": a name is reused. acme was deleted long ago; its backups were
// kept (retention). A new tenant acme was created since: its data
// directory exists and is still empty (nothing uploaded yet), its
// database holds its first rows. A restore of acme with archive_dir (as
// `fleetsafe recover` is run on the whole host after an incident) must
// not fill the new tenant's empty directory with the previous tenant's
// files.
func TestEmptyDirectoryOfANewTenantGetsAPreviousTenantsData(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
	old, _ := x.goodBackup(t, "acme", "previous tenant", 24*400)
	must(t, os.MkdirAll(x.data("acme"), 0o750)) // the new tenant, nothing uploaded yet
	archives := filepath.Join(x.root, "archives")
	must(t, os.MkdirAll(archives, 0o700))
	res := x.restore(t, "acme", "archive_dir", archives)
	t.Logf("failed=%v changed=%v msg=%v notes=%v", res["failed"], res["changed"], res["msg"], res["notes"])
	if b, err := os.ReadFile(filepath.Join(x.data("acme"), "a.txt")); err == nil {
		t.Errorf("the new tenant's present (empty) data directory was replaced, without force, by %s, a backup %v old of the previous tenant of the name: it now holds %q", old, recoveryOf(res)["data"]["backup"], b)
	}
}

// TestHostileNamesAreRefused attacks "only the named instance's
// components are ever written": names with path characters, globs,
// whitespace or nothing are refused before anything is written, even when
// a backup directory of that very name exists.
func TestHostileNamesAreRefused(t *testing.T) {
	x := newFx(t, "bk/{name}/data-*.tar.gz", "tar_gz", "")
	x.goodBackup(t, "acme", "acme", 2)
	before := digest(t, x.root)
	for _, name := range []string{"", "../acme", "acme/..", "a*", "acme ", " acme", "acme\n", "ACME", ".", "..", "acme/../acme"} {
		res := x.restore(t, name)
		if res["failed"] != true {
			t.Errorf("name %q was accepted: %v", name, res["msg"])
		}
	}
	if got := digest(t, x.root); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("a refused name changed the file system")
	}
}
