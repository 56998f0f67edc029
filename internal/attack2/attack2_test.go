// Package attack2 holds hostile tests of the modules, run as processes on
// real files: each asserts a promise of the README and fails while it is
// broken.
package attack2

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// modules holds the module binaries, built once per test binary.
var modules = fleettest.NewLibrary("attack2-lib", "instance_soft_delete", "instance_restore")

// TestMain removes the modules built for the run.
func TestMain(m *testing.M) {
	code := m.Run()
	modules.Remove()
	os.Exit(code)
}

// library builds the modules once per test binary.
func library(t *testing.T) string {
	t.Helper()
	return modules.Dir(t)
}

// run calls one module binary with args and returns its JSON result.
func run(t *testing.T, module string, args map[string]any) map[string]any {
	t.Helper()
	return modules.Run(t, module, args)
}

// instance is one instance of a small layout: a dir and a file component.
type instance struct {
	root, layout, archives, name string
}

func newInstance(t *testing.T) *instance {
	t.Helper()
	root := t.TempDir()
	in := &instance{root: root, layout: filepath.Join(root, "layout.yml"), archives: filepath.Join(root, "archives"), name: "one"}
	layout := fmt.Sprintf("app: atk\ncomponents:\n  - name: data\n    type: dir\n    path: %s/app/{name}/data\n  - name: conf\n    type: file\n    path: %s/app/{name}/conf.ini\n", root, root)
	must(t, os.WriteFile(in.layout, []byte(layout), 0o644))
	must(t, os.MkdirAll(in.archives, 0o755))
	d := filepath.Join(root, "app", in.name, "data")
	must(t, os.MkdirAll(filepath.Join(d, "sub", "deep"), 0o755))
	must(t, os.WriteFile(filepath.Join(d, "a"), []byte("hello\n"), 0o755))
	must(t, os.WriteFile(filepath.Join(d, "sub", "b"), []byte("bee\n"), 0o640))
	must(t, os.WriteFile(filepath.Join(root, "app", in.name, "conf.ini"), []byte("conf\n"), 0o600))
	must(t, os.Chown(filepath.Join(d, "sub", "deep"), 1234, 5678))
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range []string{filepath.Join(d, "sub", "deep"), filepath.Join(d, "sub", "b"), filepath.Join(d, "sub")} {
		must(t, os.Chtimes(p, old, old))
	}
	return in
}

func (in *instance) dir() string { return filepath.Join(in.root, "app", in.name) }

func (in *instance) args(kv ...any) map[string]any {
	a := map[string]any{"name": in.name, "layout_file": in.layout, "archive_dir": in.archives}
	for i := 0; i+1 < len(kv); i += 2 {
		a[kv[i].(string)] = kv[i+1]
	}
	return a
}

// snapshot describes every entry of the instance outside its trash: type,
// mode, owner, size, link count, mtime, link target and content.
func (in *instance) snapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(in.dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".fleetsafe-trash" {
			return filepath.SkipDir
		}
		if p == in.dir() {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d n=%d %s", fi.Mode(), st.Uid, st.Gid, st.Nlink, fi.ModTime().UTC().Format(time.RFC3339Nano))
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %q", data)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		rel, _ := filepath.Rel(in.dir(), p)
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// quarantine returns the newest quarantine directory of the instance.
func (in *instance) quarantine(t *testing.T) string {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(in.dir(), ".fleetsafe-trash", "*"))
	if len(ms) == 0 {
		t.Fatal("no quarantine")
	}
	sort.Strings(ms)
	return ms[len(ms)-1]
}

func diffSnap(before, after map[string]string) string {
	var b strings.Builder
	for k, v := range before {
		if after[k] != v {
			fmt.Fprintf(&b, "  %s:\n    deleted:  %s\n    restored: %s\n", k, v, after[k])
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			fmt.Fprintf(&b, "  %s: not deleted, restored as %s\n", k, v)
		}
	}
	return b.String()
}

var must = fleettest.Must

// TestQuarantineMetadataTamperIsRestoredAsSuccess: the quarantine check
// compares content, link targets and hard links with the manifest, but not
// modes, owners or mtimes. Whoever can write in the quarantine (or a stray
// chmod -R / chown -R / touch over the application tree) gets a restore that
// reports failed: false with metadata that is not what was deleted; a setuid
// bit added in quarantine comes back as setuid. Promise: after a restore,
// every component it claims is byte-identical to what was deleted (content,
// modes, owners, mtimes), or the restore fails / falls back to the archive.
func TestQuarantineMetadataTamperIsRestoredAsSuccess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
	tampers := map[string]func(t *testing.T, q string){
		"file mode setuid added": func(t *testing.T, q string) { must(t, os.Chmod(filepath.Join(q, "data", "a"), 0o4755|fs.ModeSetuid)) },
		"file mode widened":      func(t *testing.T, q string) { must(t, os.Chmod(filepath.Join(q, "conf.ini"), 0o666)) },
		"dir mode widened":       func(t *testing.T, q string) { must(t, os.Chmod(filepath.Join(q, "data", "sub"), 0o777)) },
		"file owner":             func(t *testing.T, q string) { must(t, os.Lchown(filepath.Join(q, "conf.ini"), 99, 99)) },
		"dir owner":              func(t *testing.T, q string) { must(t, os.Lchown(filepath.Join(q, "data", "sub", "deep"), 99, 99)) },
		"file mtime": func(t *testing.T, q string) {
			tm := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
			must(t, os.Chtimes(filepath.Join(q, "data", "sub", "b"), tm, tm))
		},
		"dir mtime": func(t *testing.T, q string) {
			tm := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
			must(t, os.Chtimes(filepath.Join(q, "data", "sub", "deep"), tm, tm))
		},
	}
	for name, tamper := range tampers {
		t.Run(name, func(t *testing.T) {
			in := newInstance(t)
			before := in.snapshot(t)
			res := run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2"))
			if res["failed"] != false {
				t.Fatalf("soft delete failed: %v", res["msg"])
			}
			tamper(t, in.quarantine(t))
			res = run(t, "instance_restore", in.args("source", "quarantine"))
			if res["failed"] == true {
				return // refusing a tampered quarantine keeps the promise
			}
			if d := diffSnap(before, in.snapshot(t)); d != "" {
				t.Errorf("restore reported failed: false, sources %v, but the instance differs from what was deleted:\n%s", res["sources"], d)
			}
		})
	}
}

// forge rewrites archive src into dst with every entry kept except
// components/conf/conf.ini, whose content becomes content, and the
// manifest's sha256 and size of that file rewritten to match; it writes
// dst's .sha256 sidecar too. The manifest keeps its id: it still claims
// to be the deletion that src was.
func forge(t *testing.T, src, dst string, content []byte) {
	t.Helper()
	raw, err := os.ReadFile(src)
	must(t, err)
	zr, err := zstd.NewReader(bytes.NewReader(raw))
	must(t, err)
	defer zr.Close()
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out)
	must(t, err)
	tw := tar.NewWriter(zw)
	sum := sha256.Sum256(content)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		data, err := io.ReadAll(tr)
		must(t, err)
		switch h.Name {
		case "manifest.json":
			var man map[string]any
			must(t, json.Unmarshal(data, &man))
			for _, f := range man["files"].([]any) {
				f := f.(map[string]any)
				if f["path"] == "components/conf/conf.ini" {
					f["sha256"] = hex.EncodeToString(sum[:])
					f["size"] = len(content)
				}
			}
			data, err = json.Marshal(man)
			must(t, err)
		case "components/conf/conf.ini":
			data = content
		}
		h.Size = int64(len(data))
		must(t, tw.WriteHeader(h))
		_, err = tw.Write(data)
		must(t, err)
	}
	must(t, tw.Close())
	must(t, zw.Close())
	must(t, os.WriteFile(dst, out.Bytes(), 0o600))
	whole := sha256.Sum256(out.Bytes())
	must(t, os.WriteFile(dst+".sha256", []byte(hex.EncodeToString(whole[:])+"  "+filepath.Base(dst)+"\n"), 0o600))
}

// TestForgedArchiveWithoutTombstoneIsRestored: an archive dropped into the
// archive directory under a new name, with no tombstone, whose manifest
// still claims the id of a real deletion (whose tombstone records another
// archive sha256), and whose manifest and sidecar were rewritten to match a
// changed file, is picked by source: archive (and auto once the quarantine
// is gone) and restored with failed: false. Promise: after a restore,
// every component it claims is byte-identical to what was deleted.
func TestForgedArchiveWithoutTombstoneIsRestored(t *testing.T) {
	for _, source := range []string{"archive", "auto"} {
		t.Run(source, func(t *testing.T) {
			in := newInstance(t)
			res := run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2"))
			if res["failed"] != false {
				t.Fatalf("soft delete failed: %v", res["msg"])
			}
			archives, _ := filepath.Glob(filepath.Join(in.archives, in.name, "*.tar.zst"))
			if len(archives) != 1 {
				t.Fatalf("want one archive, got %v", archives)
			}
			forged := filepath.Join(in.archives, in.name, "20991231T000000.000000Z-deadbeef.tar.zst")
			forge(t, archives[0], forged, []byte("FORGED\n"))
			if source == "auto" {
				must(t, os.RemoveAll(filepath.Join(in.dir(), ".fleetsafe-trash")))
			}
			res = run(t, "instance_restore", in.args("source", source))
			got, err := os.ReadFile(filepath.Join(in.dir(), "conf.ini"))
			if res["failed"] == false && err == nil && string(got) != "conf\n" {
				t.Errorf("restore reported failed: false, sources %v, and conf.ini is %q; what was deleted was %q", res["sources"], got, "conf\n")
			}
		})
	}
}

// tombstones lists the tombstones of the instance in an archive directory.
func tombstones(t *testing.T, archives, name string) []string {
	t.Helper()
	ms, err := filepath.Glob(filepath.Join(archives, name, "*.tombstone.json"))
	must(t, err)
	return ms
}

// TestFailedQuarantineLeavesJournalButSaysUnchanged: when the move into
// quarantine fails (here the instance's parent directory is immutable, so
// the trash cannot be created), the soft delete has already written a
// verified archive and a tombstone in state "quarantining", which the next
// run acts on ("completed an interrupted deletion"). The result says
// changed: false. Promise: changed is true whenever anything moved, also
// when the task fails.
func TestFailedQuarantineLeavesJournalButSaysUnchanged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chattr)")
	}
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr not installed")
	}
	in := newInstance(t)
	must(t, exec.Command("chattr", "+i", in.dir()).Run())
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", in.dir()).Run() })
	res := run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2"))
	must(t, exec.Command("chattr", "-i", in.dir()).Run())
	if res["failed"] != true {
		t.Fatalf("soft delete into an immutable directory did not fail: %v", res)
	}
	ts := tombstones(t, in.archives, in.name)
	archives, _ := filepath.Glob(filepath.Join(in.archives, in.name, "*.tar.zst"))
	if (len(ts) > 0 || len(archives) > 0) && res["changed"] != true {
		t.Errorf("failed soft delete left tombstones %v and archives %v on disk but reported changed: %v\nmsg: %v", ts, archives, res["changed"], res["msg"])
	}
}

// TestTwoDeletionsWithDifferentArchiveDirsRace: the lock that keeps two
// runs apart lives in the archive directory, so two soft deletes of the
// same instance given different archive_dir values (two playbooks with
// different defaults) run at once. The loser reports "stopped half way
// ... still in place: data, conf" while the winner has moved both into its
// quarantine, and leaves a tombstone in state quarantining that a later run
// "completes". Promise: two runs at once never leave a result that
// misreports the state; the second is refused with nothing changed.
func TestTwoDeletionsWithDifferentArchiveDirsRace(t *testing.T) {
	for round := 0; round < 30; round++ {
		in := newInstance(t)
		other := filepath.Join(in.root, "archives-b")
		must(t, os.MkdirAll(other, 0o755))
		var wg sync.WaitGroup
		results := make([]map[string]any, 2)
		for i, dir := range []string{in.archives, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = run(t, "instance_soft_delete", in.args("archive_dir", dir, "reason", "attack2", "requested_by", "attack2"))
			}()
		}
		wg.Wait()
		for i, res := range results {
			msg, _ := res["msg"].(string)
			if res["failed"] != true {
				continue
			}
			_, after, ok := strings.Cut(msg, "still in place: ")
			if !ok {
				continue
			}
			list, _, _ := strings.Cut(after, ".")
			for _, c := range strings.Split(list, ", ") {
				p := filepath.Join(in.dir(), "data")
				if c == "conf" {
					p = filepath.Join(in.dir(), "conf.ini")
				}
				if c != "data" && c != "conf" {
					continue
				}
				if _, err := os.Lstat(p); err != nil {
					t.Fatalf("round %d, run %d (changed %v) says %s is still in place, but %s: %v\nmsg: %s", round, i, res["changed"], c, p, err, msg)
				}
			}
		}
	}
}

// psql runs one SQL script on database db over the local socket.
func psql(t *testing.T, db, sql string) string {
	t.Helper()
	out, err := exec.Command("psql", "-h", "/var/run/postgresql", "-d", db, "-Atqc", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %s: %v\n%s", db, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestQuarantinedDatabaseTamperIsRestoredAsSuccess: a database in
// quarantine (renamed to fstrash_<id>_<name>, connections disallowed) is
// changed by anyone who may re-allow connections (its owner, a superuser),
// then restore source: quarantine renames it back and reports failed:
// false with rows that are not what was deleted. The archive holds the
// verified dump; the quarantined copy is never compared with it. Promise:
// after a restore, every component it claims is identical to what was
// deleted, database rows included.
func TestQuarantinedDatabaseTamperIsRestoredAsSuccess(t *testing.T) {
	fleettest.RequirePG(t)
	in := newInstance(t)
	app := fleettest.RandomApp()
	db := app + "_" + in.name
	layout := fmt.Sprintf("app: %s\ncomponents:\n  - name: data\n    type: dir\n    path: %s/app/{name}/data\n  - name: database\n    type: postgresql\n    database: %s_{name}\n", app, in.root, app)
	must(t, os.WriteFile(in.layout, []byte(layout), 0o644))
	psql(t, "postgres", "create database "+db)
	t.Cleanup(func() {
		out, _ := exec.Command("psql", "-h", "/var/run/postgresql", "-d", "postgres", "-Atc",
			"select datname from pg_database where datname like '%"+db+"'").Output()
		for _, d := range strings.Fields(string(out)) {
			_ = exec.Command("psql", "-h", "/var/run/postgresql", "-d", "postgres", "-qc", "drop database if exists "+d).Run()
		}
	})
	psql(t, db, "create table t(id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1,100) g")
	rows := "select md5(string_agg(id||v, ',' order by id)) from t"
	before := psql(t, db, rows)

	// Untouched, the quarantined database comes back by a rename.
	res := run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2"))
	if res["failed"] != false {
		t.Fatalf("soft delete failed: %v", res["msg"])
	}
	res = run(t, "instance_restore", in.args("source", "quarantine"))
	if res["failed"] != false {
		t.Fatalf("restore of an untouched quarantine failed: %v", res["msg"])
	}
	if src, _ := res["sources"].(map[string]any)["database"].(string); !strings.HasPrefix(src, "quarantine:") {
		t.Errorf("an untouched quarantined database came back from %q, not from quarantine (notes %v)", src, res["notes"])
	}
	if after := psql(t, db, rows); after != before {
		t.Fatalf("rows differ after a restore from an untouched quarantine")
	}

	res = run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2"))
	if res["failed"] != false {
		t.Fatalf("soft delete failed: %v", res["msg"])
	}
	id := res["tombstone"].(map[string]any)["id"].(string)
	_, suffix, _ := strings.Cut(id, "-")
	q := psql(t, "postgres", "select datname from pg_database where datname like 'fstrash_"+suffix+"%'")
	if q == "" {
		t.Fatalf("no quarantined database for deletion %s", id)
	}
	psql(t, "postgres", "alter database "+q+" allow_connections true")
	psql(t, q, "update t set v = 'TAMPERED' where id = 7")
	psql(t, "postgres", "alter database "+q+" allow_connections false")

	res = run(t, "instance_restore", in.args("source", "quarantine"))
	if res["failed"] != true {
		if after := psql(t, db, rows); after != before {
			t.Fatalf("restore reported failed: false, sources %v, but the rows of %s differ from what was deleted (row 7 is %q)", res["sources"], db, psql(t, db, "select v from t where id = 7"))
		}
	}
	// auto takes the verified archive instead, and says why.
	res = run(t, "instance_restore", in.args("source", "auto"))
	if res["failed"] != false {
		t.Fatalf("restore auto failed: %v", res["msg"])
	}
	if after := psql(t, db, rows); after != before {
		t.Errorf("restore auto reported success, sources %v, but the rows of %s differ from what was deleted", res["sources"], db)
	}
	if msg, _ := res["msg"].(string); !strings.Contains(msg, "differ from the verified dump") {
		t.Errorf("msg does not say the quarantined database differs: %q", msg)
	}
	if got := psql(t, "postgres", "select datallowconn from pg_database where datname = '"+q+"'"); got != "f" {
		t.Errorf("the tampered quarantined database %s is left open to connections (datallowconn %q)", q, got)
	}
}

// TestHardLinkOutsideTheInstanceDroppedUnnamed: a file of the instance that
// is hard-linked from outside the instance (link count 2) is archived as a
// plain file; the soft delete names no loss, the restore from the archive
// reports failed: false with no note, and the file comes back with link
// count 1, its tie to the outside name silently gone. Promise: a restored
// component is identical to what was deleted, links included; nothing is
// dropped without being named (DESIGN invariant 13).
func TestHardLinkOutsideTheInstanceDroppedUnnamed(t *testing.T) {
	in := newInstance(t)
	conf := filepath.Join(in.dir(), "conf.ini")
	must(t, os.Link(conf, filepath.Join(in.root, "outside-link")))
	res := run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2"))
	if res["failed"] != false {
		// Refusing keeps the promise only if it names the file and the
		// way to accept the loss.
		msg, _ := res["msg"].(string)
		if !strings.Contains(msg, conf) || !strings.Contains(msg, "hard_links") {
			t.Fatalf("soft delete refused without naming %s and accept_losses: [hard_links]: %s", conf, msg)
		}
		res = run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2", "accept_losses", []any{"hard_links"}))
		if res["failed"] != false {
			t.Fatalf("soft delete with accept_losses: [hard_links] failed: %v", res["msg"])
		}
	}
	losses, _ := json.Marshal(res["losses"])
	if strings.Contains(string(losses), "conf") {
		return // named as a loss
	}
	res = run(t, "instance_restore", in.args("source", "archive"))
	if res["failed"] != false {
		t.Fatalf("restore from archive failed: %v", res["msg"])
	}
	notes, _ := json.Marshal(res["notes"])
	var st syscall.Stat_t
	must(t, syscall.Lstat(conf, &st))
	if st.Nlink != 2 && !strings.Contains(string(notes), "conf") {
		t.Errorf("conf.ini had link count 2 when deleted and comes back with %d; soft delete losses %s, restore notes %s name nothing", st.Nlink, losses, notes)
	}
}

// TestEmptyPlaceholderBlocksRestoreSilently: between the delete and the
// restore something recreates the component's directory empty (a package
// postinst, systemd-tmpfiles, the service's own start script). The restore
// counts it as present, restores the other components, and reports
// failed: false with no note: the instance comes back with conf.ini but an
// empty data directory. Promise: a result never reports success over a
// partial state (at least: it says why a component that a deletion holds
// was not restored, so that force can be used).
func TestEmptyPlaceholderBlocksRestoreSilently(t *testing.T) {
	in := newInstance(t)
	res := run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2"))
	if res["failed"] != false {
		t.Fatalf("soft delete failed: %v", res["msg"])
	}
	must(t, os.Mkdir(filepath.Join(in.dir(), "data"), 0o755))
	res = run(t, "instance_restore", in.args("source", "auto"))
	if res["failed"] == true {
		return
	}
	notes, _ := json.Marshal(res["notes"])
	msg, _ := res["msg"].(string)
	entries, _ := os.ReadDir(filepath.Join(in.dir(), "data"))
	if len(entries) == 0 && !strings.Contains(string(notes), "data") && !strings.Contains(msg, "data") {
		t.Errorf("restore reported failed: false, restored %v, not_restored %v, and data is an empty directory where the deletion held files; nothing says so (msg %q, notes %s)", res["restored"], res["not_restored"], msg, notes)
	}
}

// openHole skips a test that reproduces a hole not closed yet, unless
// FLEETSAFE_ATTACK_OPEN=1 (then it runs, and fails until the hole is
// closed). Each is listed as open in FINDINGS-2.md.
func openHole(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("FLEETSAFE_ATTACK_OPEN") != "1" {
		t.Skip("open hole, run with FLEETSAFE_ATTACK_OPEN=1: " + why)
	}
}

// TestHardLinkedComponentsAreDeletedAndRestored: conf.ini is a hard link
// to data/a, two components of one instance sharing a file. The rename of
// conf.ini into quarantine updates the shared inode's ctime, which the
// check inside quarantine took for a late write to data/a: every soft
// delete failed, rolled back, and said something still wrote to the
// instance. Promise: an instance whose components share a file is
// deleted, and restored from quarantine identical, links included; from
// the archive its components come back with the same content.
func TestHardLinkedComponentsAreDeletedAndRestored(t *testing.T) {
	in := newInstance(t)
	conf := filepath.Join(in.dir(), "conf.ini")
	must(t, os.Remove(conf))
	must(t, os.Link(filepath.Join(in.dir(), "data", "a"), conf))
	before := in.snapshot(t)
	res := run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2"))
	if res["failed"] != false {
		t.Fatalf("soft delete of an instance whose components share a file failed: %v", res["msg"])
	}
	res = run(t, "instance_restore", in.args("source", "quarantine"))
	if res["failed"] != false {
		t.Fatalf("restore from quarantine failed: %v", res["msg"])
	}
	if d := diffSnap(before, in.snapshot(t)); d != "" {
		t.Fatalf("restored from quarantine differs:\n%s", d)
	}
	res = run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2"))
	if res["failed"] != false {
		t.Fatalf("second soft delete failed: %v", res["msg"])
	}
	must(t, os.RemoveAll(filepath.Join(in.dir(), ".fleetsafe-trash")))
	res = run(t, "instance_restore", in.args("source", "archive"))
	if res["failed"] != false {
		t.Fatalf("restore from archive failed: %v", res["msg"])
	}
	if d := diffSnap(before, in.snapshot(t)); d != "" {
		t.Errorf("restored from the archive differs (notes %v):\n%s", res["notes"], d)
	}
}

// TestPlaceholderIsReplacedOtherContentIsNamed: the choice for what
// stands at a component's place when a restore runs. An empty directory
// or an empty file (no ACL or other attribute, not a mount point) is a
// placeholder: it is moved aside into quarantine and the deleted content
// comes back, named in notes and replaced; a re-run changes nothing.
// Anything else (here a directory holding one file) is left as it is,
// never overwritten without force, and the notes say so and how to
// replace it.
func TestPlaceholderIsReplacedOtherContentIsNamed(t *testing.T) {
	in := newInstance(t)
	before := in.snapshot(t)
	res := run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2"))
	if res["failed"] != false {
		t.Fatalf("soft delete failed: %v", res["msg"])
	}
	must(t, os.Mkdir(filepath.Join(in.dir(), "data"), 0o755))
	must(t, os.WriteFile(filepath.Join(in.dir(), "conf.ini"), nil, 0o644))
	res = run(t, "instance_restore", in.args("source", "auto"))
	if res["failed"] != false {
		t.Fatalf("restore over placeholders failed: %v", res["msg"])
	}
	if d := diffSnap(before, in.snapshot(t)); d != "" {
		t.Fatalf("placeholders not replaced by the deleted content (result %v):\n%s", res, d)
	}
	replaced, _ := json.Marshal(res["replaced"])
	notes, _ := json.Marshal(res["notes"])
	if !strings.Contains(string(replaced), "data") || !strings.Contains(string(replaced), "conf") || !strings.Contains(string(notes), "placeholder") {
		t.Errorf("replaced %s and notes %s do not name the placeholders", replaced, notes)
	}
	res = run(t, "instance_restore", in.args("source", "auto"))
	if res["failed"] != false || res["changed"] != false {
		t.Errorf("a re-run changed something or failed: changed %v, msg %v", res["changed"], res["msg"])
	}

	// Not a placeholder: a directory with a file in it stays, named.
	res = run(t, "instance_soft_delete", in.args("reason", "attack2", "requested_by", "attack2"))
	if res["failed"] != false {
		t.Fatalf("second soft delete failed: %v", res["msg"])
	}
	must(t, os.Mkdir(filepath.Join(in.dir(), "data"), 0o755))
	must(t, os.WriteFile(filepath.Join(in.dir(), "data", "new"), []byte("new\n"), 0o644))
	res = run(t, "instance_restore", in.args("source", "auto"))
	if res["failed"] != false {
		t.Fatalf("restore failed: %v", res["msg"])
	}
	msg, _ := res["msg"].(string)
	if data, err := os.ReadFile(filepath.Join(in.dir(), "data", "new")); err != nil || string(data) != "new\n" {
		t.Errorf("a present, non-empty data directory was touched: %v %q", err, data)
	}
	if !strings.Contains(msg, "component data is present") || !strings.Contains(msg, "force: true") {
		t.Errorf("msg does not say that data was left as it is and how to replace it: %q", msg)
	}
}
