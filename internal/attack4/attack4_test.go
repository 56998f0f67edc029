// Package attack4 holds hostile tests of the modules on MariaDB-backed
// instances, run as processes against a real server: each asserts a
// promise of the README and fails while it is broken.
package attack4

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// modules holds the module binaries, built once per test binary.
var modules = fleettest.NewLibrary("attack4-lib", "instance_soft_delete", "instance_restore", "instance_purge")

// TestMain removes the modules built for the run.
func TestMain(m *testing.M) {
	code := m.Run()
	modules.Remove()
	os.Exit(code)
}

func library(t *testing.T) string {
	t.Helper()
	return modules.Dir(t)
}

// run calls one module binary with args and returns its JSON result.
func run(t *testing.T, module string, args map[string]any) map[string]any {
	t.Helper()
	return modules.Run(t, module, args)
}

// fixture is one application with a mysql component under a random
// prefix of the test's own.
type fixture struct {
	c        mariadb.Conn
	db       *sql.DB
	root     string
	prefix   string
	layout   string
	archives string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := fleettest.RequireMariaDB(t)
	db, err := c.Open(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	f := &fixture{c: c, db: db, root: t.TempDir(), prefix: "a4" + hex.EncodeToString(b)}
	f.archives = filepath.Join(f.root, "archives")
	f.layout = filepath.Join(f.root, "app.yml")
	must(t, os.MkdirAll(filepath.Join(f.root, "nolayouts"), 0o755))
	must(t, os.WriteFile(f.layout, []byte(fmt.Sprintf("app: %s\ncomponents:\n"+
		"  - name: data\n    type: dir\n    path: %s/srv/{name}/data\n"+
		"  - name: db\n    type: mysql\n    database: %s_{name}\n", f.prefix, f.root, f.prefix)), 0o644))
	t.Cleanup(func() {
		rows, err := db.Query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
		if err != nil {
			return
		}
		var names []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			if strings.Contains(n, f.prefix) {
				names = append(names, n)
			}
		}
		rows.Close()
		for _, n := range names {
			_, _ = db.Exec("DROP DATABASE IF EXISTS " + mariadb.QuoteIdent(n))
		}
	})
	return f
}

var must = fleettest.Must

func (f *fixture) database(name string) string { return f.prefix + "_" + name }

// create makes instance name: its data directory and its database with
// a table of rows.
func (f *fixture) create(t *testing.T, name string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(f.root, "srv", name, "data"), 0o755))
	must(t, os.WriteFile(filepath.Join(f.root, "srv", name, "data", "f.txt"), []byte("x"), 0o644))
	q := mariadb.QuoteIdent(f.database(name))
	f.exec(t, "CREATE DATABASE "+q,
		"CREATE TABLE "+q+".t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(50)) ENGINE=InnoDB",
		"INSERT INTO "+q+".t (v) VALUES ('one'), ('two')")
}

func (f *fixture) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := f.db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func (f *fixture) args(name string, extra map[string]any) map[string]any {
	a := map[string]any{"name": name, "archive_dir": f.archives, "layout_file": f.layout,
		"layouts_dir": filepath.Join(f.root, "nolayouts"), "mysql_socket": mariadb.DefaultSocket, "mysql_user": "root"}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

func (f *fixture) exists(t *testing.T, db string) bool {
	t.Helper()
	var n int
	must(t, f.db.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE BINARY SCHEMA_NAME = ?", db).Scan(&n))
	return n > 0
}

func (f *fixture) dump(t *testing.T, db string) string {
	t.Helper()
	var b strings.Builder
	must(t, mariadb.Dump(context.Background(), f.c, db, &b))
	lines := strings.Split(b.String(), "\n")
	var keep []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-- Dump completed") || strings.HasPrefix(l, "-- Host") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func quarantineOf(res map[string]any) string {
	q, _ := res["quarantined"].([]any)
	for _, x := range q {
		if m, ok := x.(map[string]any); ok && m["component"] == "db" {
			s, _ := m["to"].(string)
			return s
		}
	}
	return ""
}

// Promise: soft delete refuses while clients are connected to the
// database, naming them. Attack: a client connected with no default
// database (PROCESSLIST.DB is NULL) holds an open transaction that wrote
// into the instance's table, open for the whole run (committed when the
// run returns). Fleetsafe must name it; if it goes on instead, the committed
// row must at least be in the archive.
func TestAttack4_ClientWithoutDefaultDatabase(t *testing.T) {
	f := newFixture(t)
	library(t) // built before the clock of the attack starts
	f.create(t, "acme")
	q := mariadb.QuoteIdent(f.database("acme"))
	client, err := f.c.Open(context.Background(), "")
	must(t, err)
	defer client.Close()
	client.SetMaxOpenConns(1)
	conn, err := client.Conn(context.Background())
	must(t, err)
	defer conn.Close()
	var id int64
	must(t, conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id))
	_, err = conn.ExecContext(context.Background(), "START TRANSACTION")
	must(t, err)
	_, err = conn.ExecContext(context.Background(), "INSERT INTO "+q+".t (v) VALUES ('late')")
	must(t, err)
	// The transaction stays open for the whole run: a commit after a fixed
	// delay raced with the module's start on a loaded machine (a slow start
	// let the commit land before the probe, and the soft delete rightly went
	// on). It commits when the run returns, or after a minute should the
	// run wait on the client's locks, so that a miss shows as a failure
	// rather than a hang.
	finished := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-finished:
		case <-time.After(time.Minute):
		}
		_, _ = conn.ExecContext(context.Background(), "COMMIT")
	}()
	res := run(t, "instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4"}))
	close(finished)
	<-done
	conn.Close()
	if res["failed"] == true {
		if !strings.Contains(fmt.Sprint(res["msg"]), fmt.Sprintf("connection %d", id)) {
			t.Errorf("soft delete failed without naming the client connection %d that was writing into %s: %v", id, f.database("acme"), res["msg"])
		}
		return
	}
	t.Errorf("soft delete went on while connection %d (no default database) had an open transaction writing into %s; it was not named", id, f.database("acme"))
	// Is the committed row anywhere the archive knows of?
	quarantine := quarantineOf(res)
	var inQuarantine int
	if quarantine != "" {
		_ = f.db.QueryRow("SELECT COUNT(*) FROM " + mariadb.QuoteIdent(quarantine) + ".t WHERE v = 'late'").Scan(&inQuarantine)
	}
	rr := run(t, "instance_restore", f.args("acme", map[string]any{"source": "archive"}))
	if rr["failed"] == true {
		t.Fatalf("restore from the archive failed: %v", rr)
	}
	var inArchive int
	must(t, f.db.QueryRow("SELECT COUNT(*) FROM "+q+".t WHERE v = 'late'").Scan(&inArchive))
	if inArchive == 0 {
		t.Errorf("a row committed into %s during the soft delete (in quarantine: %d) is missing from the archive: the archive is not a complete dump of what was quarantined", f.database("acme"), inQuarantine)
	}
}

// Promise: only the named instance's database is ever touched. Attack: a
// table of another instance (beta) has a foreign key referencing a
// table of acme. InnoDB rewrites a referencing foreign key when the
// referenced table is renamed, so moving acme's tables into quarantine
// would rewrite beta's table definition to point into the quarantine,
// and purging the quarantine would leave beta's key dangling.
func TestAttack4_ForeignKeyFromAnotherInstance(t *testing.T) {
	f := newFixture(t)
	f.create(t, "acme")
	f.create(t, "beta")
	a, b := mariadb.QuoteIdent(f.database("acme")), mariadb.QuoteIdent(f.database("beta"))
	f.exec(t, "CREATE TABLE "+b+".child (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES "+a+".t(id)) ENGINE=InnoDB",
		"INSERT INTO "+b+".child VALUES (1, 1)")
	before := f.dump(t, f.database("beta"))
	res := run(t, "instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4", "retention_days": 0}))
	after := f.dump(t, f.database("beta"))
	if res["failed"] != true && before != after {
		t.Errorf("soft delete of acme changed the definition of another instance's database %s (its foreign key now points at %s):\n%s",
			f.database("beta"), quarantineOf(res), diffLines(before, after))
	}
	if res["failed"] == true {
		// A refusal naming the cross-database key is acceptable.
		if msg := fmt.Sprint(res["msg"]); !strings.Contains(msg, "`child`") {
			t.Errorf("soft delete of acme failed without naming the referencing table %s.child: %s", f.database("beta"), msg)
		}
		if !f.exists(t, f.database("acme")) {
			t.Errorf("soft delete of acme refused but %s is gone", f.database("acme"))
		}
		return
	}
	pr := run(t, "instance_purge", map[string]any{"archive_dir": f.archives, "layout_file": f.layout,
		"layouts_dir": filepath.Join(f.root, "nolayouts"), "name": "acme", "keep_last": 0, "mysql_socket": mariadb.DefaultSocket})
	final := f.dump(t, f.database("beta"))
	if before != final {
		t.Errorf("after the purge of acme (failed=%v msg=%v), the other instance's database %s differs from before:\n%s",
			pr["failed"], pr["msg"], f.database("beta"), diffLines(before, final))
	}
}

// diffLines lists the lines of b that are not in a, and the reverse.
func diffLines(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ina, inb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !inb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ina[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// Promise: a quarantine tampered with (a row changed, a table added or
// dropped, a view or routine changed) is never moved back as if intact.
// Attack: after the soft delete, change the quarantine database by hand
// (for the view and routine, the kept definitions with their sha256
// recomputed, since the checksum is stored beside them), then restore
// with source auto and source quarantine. A restore that succeeds must
// give the database back as it was before the deletion.
func TestAttack4_TamperedQuarantine(t *testing.T) {
	f := newFixture(t)
	defsT := "." + mariadb.QuoteIdent(mariadb.DefinitionsTable)
	tampers := []struct{ name, stmt string }{
		{"row", "UPDATE %[1]s.t SET v = 'evil' WHERE v = 'one'"},
		{"table-added", "CREATE TABLE %[1]s.planted (x INT)"},
		{"table-dropped", "DROP TABLE %[1]s.t2"},
		{"view", "UPDATE %[1]s" + defsT + " SET definitions = REPLACE(definitions, 'secret', 'SECRET'), sha256 = SHA2(definitions, 256)"},
		{"routine", "UPDATE %[1]s" + defsT + " SET definitions = REPLACE(definitions, 'proc-one', 'proc-evil'), sha256 = SHA2(definitions, 256)"},
		{"trigger", "UPDATE %[1]s" + defsT + " SET definitions = REPLACE(definitions, 'trig-one', 'trig-evil'), sha256 = SHA2(definitions, 256)"},
	}
	for i, tc := range tampers {
		// One source per tamper, alternately, to stay fast.
		for _, source := range []string{[]string{"quarantine", "auto"}[i%2]} {
			name := fmt.Sprintf("i%d%s", i, source[:1])
			t.Run(tc.name+"/"+source, func(t *testing.T) {
				f.create(t, name)
				q := mariadb.QuoteIdent(f.database(name))
				f.exec(t, "CREATE TABLE "+q+".t2 (x INT) ENGINE=InnoDB", "INSERT INTO "+q+".t2 VALUES (7)",
					"CREATE VIEW "+q+".v AS SELECT id, v FROM "+q+".t WHERE v <> 'secret'",
					"CREATE PROCEDURE "+q+".p() SELECT 'proc-one'",
					"CREATE TRIGGER "+q+".tr BEFORE INSERT ON "+q+".t2 FOR EACH ROW SET NEW.x = LENGTH('trig-one')")
				before := f.dump(t, f.database(name))
				res := run(t, "instance_soft_delete", f.args(name, map[string]any{"reason": "attack4"}))
				if res["failed"] == true {
					t.Fatalf("soft delete failed: %v", res["msg"])
				}
				quarantine := quarantineOf(res)
				if quarantine == "" {
					t.Fatalf("no quarantine in %v", res)
				}
				r, err := f.db.Exec(fmt.Sprintf(tc.stmt, mariadb.QuoteIdent(quarantine)))
				must(t, err)
				if n, _ := r.RowsAffected(); strings.HasPrefix(tc.stmt, "UPDATE") && n == 0 {
					t.Fatalf("the tamper %q changed nothing", tc.name)
				}
				rr := run(t, "instance_restore", f.args(name, map[string]any{"source": source}))
				if rr["failed"] == true {
					if !f.exists(t, quarantine) && !f.exists(t, f.database(name)) {
						t.Errorf("restore refused (%v) and left neither the quarantine nor the database", rr["msg"])
					}
					return
				}
				if after := f.dump(t, f.database(name)); after != before {
					t.Errorf("quarantine tampered (%s) was restored (source %v) as if intact:\n%s", tc.name, rr["source"], diffLines(before, after))
				}
			})
		}
	}
}

func (f *fixture) purge(t *testing.T, name string) map[string]any {
	t.Helper()
	return run(t, "instance_purge", map[string]any{"archive_dir": f.archives, "layout_file": f.layout,
		"layouts_dir": filepath.Join(f.root, "nolayouts"), "name": name, "keep_last": 0, "mysql_socket": mariadb.DefaultSocket})
}

// forge writes a tombstone beside the real one of a deletion of
// instance, changed by edit, under a new id.
func (f *fixture) forge(t *testing.T, res map[string]any, id string, edit func(map[string]any)) {
	t.Helper()
	path := res["tombstone"].(map[string]any)["path"].(string)
	data, err := os.ReadFile(path)
	must(t, err)
	var ts map[string]any
	must(t, json.Unmarshal(data, &ts))
	old := ts["id"].(string)
	for _, c := range ts["components"].([]any) {
		m := c.(map[string]any)
		m["to"] = strings.ReplaceAll(m["to"].(string), old, id)
	}
	ts["id"] = id
	ts["deleted_at"] = "2020-01-01T00:00:00Z"
	ts["purge_after"] = "2020-01-02T00:00:00Z"
	ts["retention_days"] = 1
	edit(ts)
	out, err := json.MarshalIndent(ts, "", "  ")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(filepath.Dir(path), id+".tombstone.json"), out, 0o600))
}

func setDBTo(ts map[string]any, to string) {
	for _, c := range ts["components"].([]any) {
		m := c.(map[string]any)
		if m["type"] == "mysql" {
			m["to"] = to
		}
	}
}

// Promise: purge removes only the quarantine it owns; a forged tombstone
// or a quarantine schema planted by someone else is never dropped.
// Attacks: (1) a schema named exactly like a quarantine of acme (no
// definitions table, never written by fleetsafe), created by someone
// else, and a tombstone forged to point at it with its retention over;
// (2) a tombstone of acme forged to point at beta's quarantine (still
// within retention).
func TestAttack4_PurgeForgedTombstone(t *testing.T) {
	f := newFixture(t)
	library(t)
	f.create(t, "acme")
	f.create(t, "beta")
	ra := run(t, "instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4"}))
	rb := run(t, "instance_soft_delete", f.args("beta", map[string]any{"reason": "attack4"}))
	if ra["failed"] == true || rb["failed"] == true {
		t.Fatalf("soft deletes failed: %v / %v", ra["msg"], rb["msg"])
	}
	qa, qb := quarantineOf(ra), quarantineOf(rb)
	planted := mariadb.QuarantinePrefix + "deadbeef_" + f.database("acme")
	f.exec(t, "CREATE DATABASE "+mariadb.QuoteIdent(planted), "CREATE TABLE "+mariadb.QuoteIdent(planted)+".keep (x INT)")
	f.forge(t, ra, "20200101T000000.000000Z-deadbeef", func(ts map[string]any) { setDBTo(ts, planted) })
	f.forge(t, ra, "20200101T000000.000001Z-cafecafe", func(ts map[string]any) { setDBTo(ts, qb) })
	res := f.purge(t, "acme")
	t.Logf("purge: failed=%v purged=%v msg=%v", res["failed"], res["purged"], res["msg"])
	if !f.exists(t, planted) {
		t.Errorf("purge dropped %s, a schema planted by someone else, on the word of a forged tombstone", planted)
	}
	if !f.exists(t, qb) {
		t.Errorf("purge of acme dropped beta's quarantine %s (within its retention) on the word of a tombstone forged in acme's directory", qb)
	}
	if !f.exists(t, qa) {
		t.Errorf("purge dropped acme's quarantine %s before its retention (a forged tombstone with another id made it go)", qa)
	}
}

// Promise: purge removes a quarantine only after retention. Attack:
// acme's own tombstone with its purge_after moved into the past (the
// deletion was recorded with 30 days of retention).
func TestAttack4_PurgeRetentionFromEditedTombstone(t *testing.T) {
	f := newFixture(t)
	library(t)
	f.create(t, "acme")
	ra := run(t, "instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4"}))
	if ra["failed"] == true {
		t.Fatalf("soft delete failed: %v", ra["msg"])
	}
	qa := quarantineOf(ra)
	path := ra["tombstone"].(map[string]any)["path"].(string)
	data, err := os.ReadFile(path)
	must(t, err)
	var ts map[string]any
	must(t, json.Unmarshal(data, &ts))
	ts["purge_after"] = "2020-01-02T00:00:00Z"
	out, _ := json.MarshalIndent(ts, "", "  ")
	must(t, os.WriteFile(path, out, 0o600))
	res := f.purge(t, "acme")
	if !f.exists(t, qa) {
		t.Errorf("purge dropped %s, whose deletion was recorded with 30 days of retention, because the tombstone's purge_after was edited (failed=%v msg=%v)", qa, res["failed"], res["msg"])
	}
	// Refused, naming both dates (closed by the quarantine's own record:
	// the quarantine database's comment).
	after, err := time.Parse(time.RFC3339Nano, ra["tombstone"].(map[string]any)["purge_after"].(string))
	must(t, err)
	want := after.UTC().Format(time.RFC3339)
	msg := fmt.Sprint(res["msg"], res["refused"])
	if res["failed"] != true || !strings.Contains(msg, "2020-01-02T00:00:00Z") || !strings.Contains(msg, want) {
		t.Errorf("purge did not refuse naming the tombstone's purge_after (2020-01-02T00:00:00Z) and the quarantine's own (%s): failed=%v %s", want, res["failed"], msg)
	}
	// The quarantine database keeps its own record too (its comment):
	// without the directory's, purge still refuses, naming the database.
	matches, _ := filepath.Glob(filepath.Join(f.root, "srv", "acme", ".fleetsafe-trash", "*", ".fleetsafe-retention"))
	if len(matches) != 1 {
		t.Fatalf("the directory's quarantine keeps %d retention record(s), want 1: %v", len(matches), matches)
	}
	must(t, os.Remove(matches[0]))
	res = f.purge(t, "acme")
	if !f.exists(t, qa) {
		t.Errorf("purge dropped %s on the edited tombstone once the directory's record was gone", qa)
	}
	if msg := fmt.Sprint(res["msg"]); res["failed"] != true || !strings.Contains(msg, "the comment of database "+qa) || !strings.Contains(msg, want) {
		t.Errorf("purge did not refuse on the database's own record (%s): failed=%v %s", want, res["failed"], msg)
	}
}

// Promise: a broken mysql_dump backup (truncated plain/gzip/zstd, a
// table's data missing, another database's dump, a dump that loads with
// errors) is reported by backup_verify, never credited. Each case is
// the only backup of one instance; backup_verify runs with a restore
// test. A good dump is credited (so the check can pass at all).
func TestAttack4_BrokenMySQLBackups(t *testing.T) {
	f := newFixture(t)
	lib := t.TempDir()
	fleettest.BuildFleetsafe(t, lib, "backup_verify")
	layout := filepath.Join(f.root, "backup.yml")
	must(t, os.WriteFile(layout, []byte(fmt.Sprintf("app: %[2]s\ncomponents:\n"+
		"  - name: data\n    type: dir\n    path: %[1]s/srv/{name}/data\n    backup: false\n"+
		"  - name: db\n    type: mysql\n    database: %[2]s_{name}\n"+
		"backups:\n  - component: db\n    path: %[1]s/backups/{name}/db-*.sql*\n    format: mysql_dump\n    max_age: 26h\n", f.root, f.prefix)), 0o644))
	dump := func(t *testing.T, db string, extra ...string) string {
		var b strings.Builder
		must(t, mariadb.DumpWith(context.Background(), f.c, db, &b, extra...))
		return b.String()
	}
	make2 := func(t *testing.T, name string) string {
		f.create(t, name)
		q := mariadb.QuoteIdent(f.database(name))
		f.exec(t, "CREATE TABLE "+q+".t2 (x INT PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO "+q+".t2 VALUES (1), (2), (3)")
		return f.database(name)
	}
	cases := []struct {
		name   string
		file   string
		backup func(t *testing.T, db string) []byte
		good   bool
	}{
		{"good", "db-1.sql", func(t *testing.T, db string) []byte { return []byte(dump(t, db)) }, true},
		{"no-data-for-one-table", "db-1.sql", func(t *testing.T, db string) []byte {
			return []byte(dump(t, db, "--ignore-table-data="+db+".t2"))
		}, false},
		{"no-data-at-all", "db-1.sql", func(t *testing.T, db string) []byte { return []byte(dump(t, db, "--no-data")) }, false},
		{"rows-filtered-out", "db-1.sql", func(t *testing.T, db string) []byte { return []byte(dump(t, db, "--where=1=0")) }, false},
		{"loads-with-errors", "db-1.sql", func(t *testing.T, db string) []byte {
			s := dump(t, db)
			// A duplicate key inside t2's data section: the load stops there.
			i := strings.Index(s, "INSERT INTO `t2` VALUES")
			if i < 0 {
				t.Fatal("no INSERT for t2 in the dump")
			}
			return []byte(s[:i] + "INSERT INTO `t2` VALUES (1);\n" + s[i:])
		}, false},
		{"other-instance", "db-1.sql", func(t *testing.T, db string) []byte {
			other := make2(t, "oth"+suffix4())
			return []byte(dump(t, other))
		}, false},
		{"gzip-truncated", "db-1.sql.gz", func(t *testing.T, db string) []byte {
			out, err := exec.Command("sh", "-c", "mariadb-dump --single-transaction --routines --triggers --events "+db+" | gzip").Output()
			must(t, err)
			return out[:len(out)*2/3]
		}, false},
		{"zstd-truncated", "db-1.sql.zst", func(t *testing.T, db string) []byte {
			out, err := exec.Command("sh", "-c", "mariadb-dump --single-transaction --routines --triggers --events "+db+" | zstd -q -c").Output()
			must(t, err)
			return out[:len(out)*2/3]
		}, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("b%d", i)
			db := make2(t, name)
			dir := filepath.Join(f.root, "backups", name)
			must(t, os.MkdirAll(dir, 0o755))
			must(t, os.WriteFile(filepath.Join(dir, tc.file), tc.backup(t, db), 0o644))
			args := map[string]any{"layout_file": layout, "layouts_dir": filepath.Join(f.root, "nolayouts"), "names": []string{name},
				"restore_test": 1, "fail_on": "never", "state_file": filepath.Join(t.TempDir(), "state.json"),
				"mysql_socket": mariadb.DefaultSocket, "mysql_user": "root"}
			p := filepath.Join(t.TempDir(), "args.json")
			buf, _ := json.Marshal(args)
			must(t, os.WriteFile(p, buf, 0o600))
			out, _ := exec.Command(filepath.Join(lib, "backup_verify"), p).Output()
			var res map[string]any
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("not JSON: %s", out)
			}
			insts, _ := res["instances"].([]any)
			if len(insts) != 1 {
				t.Fatalf("want one instance in %v", res)
			}
			inst := insts[0].(map[string]any)
			status := fmt.Sprint(inst["status"])
			if tc.good && status != "ok" {
				t.Fatalf("a good dump is not credited: %v", inst)
			}
			if !tc.good && status != "failed" {
				t.Errorf("broken backup (%s) credited: status %s, checks %v", tc.name, status, inst["checks"])
			}
		})
	}
}

func suffix4() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Promise: only the named instance's database is ever touched, never one
// whose name merely resembles it. Attack: beside acme's database, ones
// differing by case, by a LIKE wildcard (_ and %), by a suffix, by a dot,
// a dash or a non-ASCII letter; soft delete acme, restore it from the
// archive, soft delete it again and purge: every look-alike dumps as
// before.
func TestAttack4_LookAlikeDatabases(t *testing.T) {
	f := newFixture(t)
	library(t)
	f.create(t, "acme")
	alike := []string{
		strings.ToUpper(f.prefix) + "_acme", f.prefix + "_ACME", f.prefix + "_Acme",
		f.prefix + "_acm_", f.prefix + "_acm%", f.prefix + "_acme_", f.prefix + "_acme%", f.prefix + "%acme", f.prefix + "__acme",
		f.prefix + "_acme.x", f.prefix + "_acme-2", f.prefix + "_acmé", f.prefix + "_acme ", f.prefix + "acme",
		mariadb.QuarantinePrefix + f.prefix + "_acme",
	}
	before := map[string]string{}
	for _, n := range alike {
		if strings.HasSuffix(n, " ") {
			if _, err := f.db.Exec("CREATE DATABASE " + mariadb.QuoteIdent(n)); err != nil {
				continue // MariaDB refuses trailing spaces
			}
		} else {
			f.exec(t, "CREATE DATABASE "+mariadb.QuoteIdent(n))
		}
		f.exec(t, "CREATE TABLE "+mariadb.QuoteIdent(n)+".t (id INT PRIMARY KEY, v VARCHAR(50))",
			"INSERT INTO "+mariadb.QuoteIdent(n)+".t VALUES (1, 'look-alike')")
		before[n] = f.dump(t, n)
	}
	steps := []struct {
		module string
		args   map[string]any
	}{
		{"instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4"})},
		{"instance_restore", f.args("acme", map[string]any{"source": "archive"})},
		{"instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4", "retention_days": 0})},
		{"instance_restore", f.args("acme", map[string]any{"source": "quarantine"})},
		{"instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4", "retention_days": 0})},
	}
	for _, s := range steps {
		res := run(t, s.module, s.args)
		if res["failed"] == true {
			t.Fatalf("%s failed: %v", s.module, res["msg"])
		}
	}
	f.purge(t, "acme")
	for n, want := range before {
		if !f.exists(t, n) {
			t.Errorf("look-alike database %q is gone", n)
			continue
		}
		if got := f.dump(t, n); got != want {
			t.Errorf("look-alike database %q changed:\n%s", n, diffLines(want, got))
		}
	}
}

// Promise: two runs at once never both act. Attack: two soft deletes
// of acme started together, then two restores from quarantine together.
func TestAttack4_TwoRunsAtOnce(t *testing.T) {
	f := newFixture(t)
	library(t)
	f.create(t, "acme")
	want := f.dump(t, f.database("acme"))
	both := func(module string, args map[string]any) [2]map[string]any {
		var out [2]map[string]any
		var wg sync.WaitGroup
		for i := range out {
			wg.Add(1)
			go func() { defer wg.Done(); out[i] = run(t, module, args) }()
		}
		wg.Wait()
		return out
	}
	rs := both("instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4"}))
	acted := 0
	var quarantines []string
	for _, r := range rs {
		if r["failed"] != true && r["changed"] == true {
			acted++
			quarantines = append(quarantines, quarantineOf(r))
		}
	}
	if acted != 1 {
		t.Fatalf("two soft deletes at once: %d acted (%v / %v)", acted, rs[0], rs[1])
	}
	if f.exists(t, f.database("acme")) || !f.exists(t, quarantines[0]) {
		t.Fatalf("after the soft deletes: live %v, quarantine %s %v", f.exists(t, f.database("acme")), quarantines[0], f.exists(t, quarantines[0]))
	}
	rr := both("instance_restore", f.args("acme", map[string]any{"source": "quarantine"}))
	acted = 0
	for _, r := range rr {
		if r["failed"] != true && r["changed"] == true {
			acted++
		}
	}
	if acted != 1 {
		t.Errorf("two restores at once: %d acted (%v / %v)", acted, rr[0], rr[1])
	}
	if got := f.dump(t, f.database("acme")); got != want {
		t.Errorf("after two restores at once the database differs:\n%s", diffLines(want, got))
	}
}

// Promise: the archive holds a complete dump and a restore gives the
// database back identical, from quarantine or from the archive; only the
// named instance's database is touched. Attack: objects that RENAME
// TABLE, the dump or the kept definitions may miss or mangle: a
// partitioned table, Aria and MyISAM tables, a table named with 64
// characters, a non-default charset and collation, a blob of invalid
// UTF-8, a sequence, an event, a view selecting from another instance's
// database, a trigger writing into it, a procedure with a comment and a
// definer, and a view with a check option.
func TestAttack4_ExoticRoundTrip(t *testing.T) {
	f := newFixture(t)
	library(t)
	f.create(t, "acme")
	f.create(t, "beta")
	a, b := mariadb.QuoteIdent(f.database("acme")), mariadb.QuoteIdent(f.database("beta"))
	long := strings.Repeat("L", 64)
	f.exec(t,
		"ALTER DATABASE "+a+" CHARACTER SET latin1 COLLATE latin1_swedish_ci",
		"CREATE TABLE "+a+".part (id INT, y INT, PRIMARY KEY (id, y)) ENGINE=InnoDB PARTITION BY RANGE (y) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)",
		"INSERT INTO "+a+".part VALUES (1, 1), (2, 20)",
		"CREATE TABLE "+a+".aria (id INT PRIMARY KEY, s VARCHAR(20)) ENGINE=Aria",
		"INSERT INTO "+a+".aria VALUES (1, 'aria')",
		"CREATE TABLE "+a+".myi (id INT PRIMARY KEY, s VARCHAR(20)) ENGINE=MyISAM",
		"INSERT INTO "+a+".myi VALUES (1, 'myisam')",
		"CREATE TABLE "+a+".`"+long+"` (id INT PRIMARY KEY) ENGINE=InnoDB",
		"INSERT INTO "+a+".`"+long+"` VALUES (64)",
		"CREATE TABLE "+a+".cs (s VARCHAR(20) CHARACTER SET cp1251 COLLATE cp1251_bin, u VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_uca1400_ai_ci, b BLOB) ENGINE=InnoDB",
		"INSERT INTO "+a+".cs VALUES (CONVERT('Привет' USING cp1251), 'ß😀', x'c328ffa0e28228f0288cbc00')",
		"CREATE SEQUENCE "+a+".seq START WITH 100",
		"SELECT NEXTVAL("+a+".seq)",
		"CREATE TABLE "+b+".log (msg VARCHAR(50))",
		"CREATE VIEW "+a+".cross_v AS SELECT COUNT(*) AS n FROM "+b+".t",
		"CREATE VIEW "+a+".chk AS SELECT id, v FROM "+a+".t WHERE id > 0 WITH CASCADED CHECK OPTION",
		"CREATE TRIGGER "+a+".to_beta AFTER INSERT ON "+a+".t FOR EACH ROW INSERT INTO "+b+".log VALUES (NEW.v)",
		"CREATE DEFINER = CURRENT_USER PROCEDURE "+a+".p(IN x INT) COMMENT 'a ''quoted'' comment' SQL SECURITY INVOKER SELECT x * 2",
		"CREATE EVENT "+a+".ev ON SCHEDULE EVERY 1 HOUR STARTS '2031-01-01 00:00:00' DISABLE COMMENT 'ev' DO DELETE FROM "+a+".myi WHERE id < 0",
	)
	want := f.dump(t, f.database("acme"))
	wantB := f.dump(t, f.database("beta"))
	check := func(step string) {
		t.Helper()
		if got := f.dump(t, f.database("acme")); got != want {
			t.Errorf("after %s, acme differs from before its deletion:\n%s", step, diffLines(want, got))
		}
		if got := f.dump(t, f.database("beta")); got != wantB {
			t.Errorf("after %s, the other instance beta changed:\n%s", step, diffLines(wantB, got))
		}
	}
	for _, source := range []string{"quarantine", "archive"} {
		res := run(t, "instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4"}))
		if res["failed"] == true {
			t.Fatalf("soft delete failed: %v", res["msg"])
		}
		rr := run(t, "instance_restore", f.args("acme", map[string]any{"source": source}))
		if rr["failed"] == true {
			t.Fatalf("restore from %s failed: %v", source, rr["msg"])
		}
		check("a restore from " + source)
	}
	// The restored sequence never hands out a value again (it may skip
	// its cache, as after a server restart).
	var next int64
	must(t, f.db.QueryRow("SELECT NEXTVAL("+a+".seq)").Scan(&next))
	if next <= 100 {
		t.Errorf("the sequence restored gives %d again, after 100 was handed out", next)
	}
}

// Promise: a soft delete that cannot finish leaves the database whole
// (live or quarantined) and the next run converges. Attack: a client
// with no default database holds an open transaction that read acme's
// table (a metadata lock), so the RENAME TABLE into quarantine waits and
// times out; then the client goes and the soft delete runs again.
func TestAttack4_RenameBlockedByLongTransaction(t *testing.T) {
	f := newFixture(t)
	library(t)
	f.create(t, "acme")
	q := mariadb.QuoteIdent(f.database("acme"))
	f.exec(t, "CREATE TABLE "+q+".t2 (x INT) ENGINE=InnoDB", "INSERT INTO "+q+".t2 VALUES (5)")
	want := f.dump(t, f.database("acme"))
	client, err := f.c.Open(context.Background(), "")
	must(t, err)
	defer client.Close()
	conn, err := client.Conn(context.Background())
	must(t, err)
	_, err = conn.ExecContext(context.Background(), "START TRANSACTION")
	must(t, err)
	var n int
	must(t, conn.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM "+q+".t2").Scan(&n))
	res := run(t, "instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4"}))
	_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
	conn.Close()
	if res["failed"] != true {
		t.Logf("soft delete went on under a metadata lock: %v", res["quarantined"])
	} else {
		t.Logf("refused/failed: %v", res["msg"])
		if !f.exists(t, f.database("acme")) {
			t.Fatalf("the failed soft delete left no live database (changed=%v): %v", res["changed"], res["msg"])
		}
		if got := f.dump(t, f.database("acme")); got != want {
			t.Errorf("the failed soft delete left the live database changed:\n%s", diffLines(want, got))
		}
		res = run(t, "instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4"}))
		if res["failed"] == true {
			t.Fatalf("the soft delete run again, without the client, does not converge: %v", res["msg"])
		}
	}
	rr := run(t, "instance_restore", f.args("acme", map[string]any{"source": "quarantine"}))
	if rr["failed"] == true {
		t.Fatalf("restore from quarantine failed: %v", rr["msg"])
	}
	if got := f.dump(t, f.database("acme")); got != want {
		t.Errorf("restored database differs:\n%s", diffLines(want, got))
	}
}

// runKilled starts a module and kills it with SIGKILL after delay.
func runKilled(t *testing.T, module string, args map[string]any, delay time.Duration) {
	t.Helper()
	cmd := modules.Cmd(t, module, args)
	must(t, cmd.Start())
	time.Sleep(delay)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// Promise: a purge killed (SIGKILL) at any instant, then run again,
// converges: the quarantine is gone, nothing else is touched, and no
// half-dropped quarantine is ever taken for a whole one by a restore.
func TestAttack4_PurgeKilledAtRandomInstants(t *testing.T) {
	f := newFixture(t)
	library(t)
	f.create(t, "beta")
	wantB := f.dump(t, f.database("beta"))
	for round := 0; round < 4; round++ {
		f.create(t, "acme")
		q := mariadb.QuoteIdent(f.database("acme"))
		for i := 0; i < 20; i++ {
			f.exec(t, fmt.Sprintf("CREATE TABLE %s.x%d (id INT PRIMARY KEY) ENGINE=InnoDB", q, i))
		}
		res := run(t, "instance_soft_delete", f.args("acme", map[string]any{"reason": "attack4", "retention_days": 0}))
		if res["failed"] == true {
			t.Fatalf("soft delete failed: %v", res["msg"])
		}
		quarantine := quarantineOf(res)
		var rb [1]byte
		_, _ = rand.Read(rb[:])
		delay := time.Duration(rb[0]) * time.Millisecond
		runKilled(t, "instance_purge", map[string]any{"archive_dir": f.archives, "layout_file": f.layout,
			"layouts_dir": filepath.Join(f.root, "nolayouts"), "name": "acme", "keep_last": 0, "mysql_socket": mariadb.DefaultSocket}, delay)
		// A restore from quarantine now must not bring back a half-dropped one.
		if f.exists(t, quarantine) {
			var tables int
			must(t, f.db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE BINARY TABLE_SCHEMA = ?", quarantine).Scan(&tables))
			if tables < 21 {
				rr := run(t, "instance_restore", f.args("acme", map[string]any{"source": "quarantine"}))
				if rr["failed"] != true {
					t.Errorf("round %d (killed after %v): a restore took the half-dropped quarantine %s (%d tables) for a whole one", round, delay, quarantine, tables)
				}
			}
		}
		pr := f.purge(t, "acme")
		if pr["failed"] == true {
			time.Sleep(time.Second)
			third := f.purge(t, "acme")
			t.Fatalf("round %d (killed after %v): purge run again does not converge: %v (a third run a second later: failed=%v %v)",
				round, delay, pr["msg"], third["failed"], third["msg"])
		}
		if f.exists(t, quarantine) {
			t.Errorf("round %d: quarantine %s still there after the purge ran again", round, quarantine)
		}
		if got := f.dump(t, f.database("beta")); got != wantB {
			t.Fatalf("round %d: beta changed:\n%s", round, diffLines(wantB, got))
		}
	}
}
