package mysql_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/mysql"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

var k mysql.Kind

func suffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// server returns the connection and an admin pool on the local MariaDB.
func server(t *testing.T) (mariadb.Conn, *sql.DB) {
	t.Helper()
	c := fleettest.RequireMariaDB(t)
	db, err := c.Open(context.Background(), "")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return c, db
}

// dropPrefix drops, when the test ends, every database whose name holds
// part (the test's random prefix): the instance's, its quarantines and
// staging databases.
func dropPrefix(t *testing.T, db *sql.DB, part string) {
	t.Cleanup(func() {
		rows, err := db.Query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
		if err != nil {
			return
		}
		var names []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			if strings.Contains(n, part) {
				names = append(names, n)
			}
		}
		rows.Close()
		for _, n := range names {
			_, _ = db.Exec("DROP DATABASE IF EXISTS " + mariadb.QuoteIdent(n))
		}
	})
}

func run(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		_, err := db.Exec(s)
		require.NoError(t, err, s)
	}
}

// fill creates, in database name, what a Nextcloud-like database holds
// and what RENAME TABLE cannot carry: tables with rows (binary and
// non-ASCII too), a sequence, a view over a function, a procedure, a
// trigger and an event.
func fill(t *testing.T, db *sql.DB, name string) {
	q := mariadb.QuoteIdent(name)
	run(t, db,
		"CREATE DATABASE "+q+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		"CREATE TABLE "+q+".oc_files (id INT PRIMARY KEY AUTO_INCREMENT, path VARCHAR(200), data VARBINARY(16)) ENGINE=InnoDB",
		"CREATE TABLE "+q+".`odd``name` (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES "+q+".oc_files(id)) ENGINE=InnoDB",
		"CREATE TABLE "+q+".oc_log (msg TEXT) ENGINE=MyISAM",
		"CREATE SEQUENCE "+q+".oc_seq",
		"INSERT INTO "+q+".oc_files (path, data) VALUES ('/a', x'00ff10'), ('/ünï 🙂', NULL), ('it''s', x'')",
		"INSERT INTO "+q+".`odd``name` VALUES (1, 1)",
		"INSERT INTO "+q+".oc_log VALUES ('started')",
		"CREATE FUNCTION "+q+".twice(x INT) RETURNS INT DETERMINISTIC RETURN 2 * x",
		"CREATE PROCEDURE "+q+".`pr oc`() SELECT 1",
		"CREATE VIEW "+q+".v_files AS SELECT id, "+q+".twice(id) AS d FROM "+q+".oc_files",
		"CREATE TRIGGER "+q+".upper_path BEFORE INSERT ON "+q+".oc_files FOR EACH ROW SET NEW.path = UPPER(NEW.path)",
		"CREATE EVENT "+q+".nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM "+q+".oc_log",
	)
}

var (
	dumpDate = regexp.MustCompile(`(?m)^-- Dump completed on .*$`)
	dumpHost = regexp.MustCompile(`(?m)^-- Host: .*$`)
)

// dumpOf dumps a database as the archive does (every table's structure
// and rows, views, routines, triggers, events), without the lines that
// name the host, the database and the date.
func dumpOf(t *testing.T, c mariadb.Conn, name string) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, mariadb.Dump(context.Background(), c, name, &b))
	s := dumpDate.ReplaceAllString(b.String(), "-- Dump completed")
	return dumpHost.ReplaceAllString(s, "-- Host")
}

// nextcloud is a layout with a directory and a mysql component, under a
// random database prefix of the test's own.
type nextcloud struct {
	root, prefix string
	l            *instance.Layout
	opts         instance.Options
	archives     string
}

func newNextcloud(t *testing.T, db *sql.DB) *nextcloud {
	n := &nextcloud{root: t.TempDir(), prefix: "kt" + suffix()}
	dropPrefix(t, db, n.prefix)
	l, err := instance.ParseLayout([]byte(fmt.Sprintf("app: nextcloud\ncomponents:\n"+
		"  - name: data\n    type: dir\n    path: %s/srv/{name}/data\n"+
		"  - name: db\n    type: mysql\n    database: %s_{name}\n", n.root, n.prefix)), "nextcloud.yml")
	require.NoError(t, err)
	n.l = l
	n.opts = instance.Options{SkipSizes: true, SystemdDir: filepath.Join(n.root, "systemd")}
	n.archives = filepath.Join(n.root, "archives")
	return n
}

func (n *nextcloud) database(name string) string { return n.prefix + "_" + name }

func (n *nextcloud) create(t *testing.T, db *sql.DB, name string) {
	require.NoError(t, os.MkdirAll(filepath.Join(n.root, "srv", name, "data"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(n.root, "srv", name, "data", "f.txt"), []byte("data of "+name), 0o644))
	fill(t, db, n.database(name))
}

func (n *nextcloud) delete(t *testing.T, name string) *softdelete.Result {
	t.Helper()
	res, err := softdelete.Delete(context.Background(), n.l, softdelete.Request{Name: name, ArchiveDir: n.archives, Reason: "test", Options: n.opts})
	require.NoError(t, err)
	return res
}

func (n *nextcloud) restore(t *testing.T, name, source string) *softdelete.RestoreResult {
	t.Helper()
	res, err := softdelete.Restore(context.Background(), n.l, softdelete.RestoreRequest{Name: name, ArchiveDir: n.archives, Source: source, Options: n.opts})
	require.NoError(t, err)
	return res
}

func quarantineOf(t *testing.T, res *softdelete.Result, comp string) softdelete.QuarantineMove {
	t.Helper()
	for _, q := range res.Quarantined {
		if q.Component == comp {
			return q
		}
	}
	t.Fatalf("no quarantine move of %s in %+v", comp, res.Quarantined)
	return softdelete.QuarantineMove{}
}

func exists(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	ok, err := mariadb.Exists(context.Background(), db, name)
	require.NoError(t, err)
	return ok
}

// TestMySQL_Lifecycle: a MariaDB-backed instance (beside a directory)
// is refused while a client is connected (the client named, nothing
// moved); soft-deleted (the archive holds a complete dump, the database
// is gone from its name, its quarantine keeps the views, routines,
// triggers and events); restored from quarantine dumping byte for byte
// as before; soft-deleted again, its quarantine tampered with (a row
// changed, then a table added by someone else) and restored from the
// archive instead, byte for byte as before; soft-deleted and purged (the
// quarantine dropped), then restored from the archive.
func TestMySQL_Lifecycle(t *testing.T) {
	c, db := server(t)
	ctx := context.Background()
	n := newNextcloud(t, db)
	n.create(t, db, "acme")
	n.create(t, db, "other")
	want := dumpOf(t, c, n.database("acme"))
	other := dumpOf(t, c, n.database("other"))

	insts, err := n.l.Discover(ctx, n.opts)
	require.NoError(t, err)
	require.Len(t, insts, 2)
	st, _ := insts[0].State("db")
	assert.True(t, st.Present)
	assert.Equal(t, n.database("acme"), st.Locator)
	assert.Nil(t, st.SizeBytes, "no sizes asked for")
	sized := n.opts
	sized.SkipSizes = false
	insts, err = n.l.Discover(ctx, sized)
	require.NoError(t, err)
	st, _ = insts[0].State("db")
	require.NotNil(t, st.SizeBytes)
	assert.Positive(t, *st.SizeBytes, "data and indexes of its tables")

	// A client connected: refused, named, nothing moved.
	app, err := c.Open(ctx, n.database("acme"))
	require.NoError(t, err)
	app.SetMaxIdleConns(1)
	require.NoError(t, app.PingContext(ctx))
	_, err = softdelete.Delete(ctx, n.l, softdelete.Request{Name: "acme", ArchiveDir: n.archives, Reason: "test", Options: n.opts})
	var re *softdelete.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Error(), "client connection(s): connection ")
	assert.Contains(t, re.Error(), "@localhost")
	require.NoError(t, app.Close())
	assert.True(t, exists(t, db, n.database("acme")))
	assert.DirExists(t, filepath.Join(n.root, "srv", "acme", "data"))

	res := n.delete(t, "acme")
	q := quarantineOf(t, res, "db")
	assert.False(t, exists(t, db, n.database("acme")), "gone from its name")
	assert.True(t, strings.HasPrefix(q.To, mariadb.QuarantinePrefix), q.To)
	kept, err := mariadb.KeptDefinitions(ctx, db, q.To)
	require.NoError(t, err)
	assert.Len(t, kept.Objects, 5, "view, function, procedure, trigger and event kept in the quarantine")
	m, err := archive.VerifyArchive(ctx, res.Archive.Path)
	require.NoError(t, err)
	require.Len(t, m.Databases, 1)
	assert.Equal(t, "components/db.sql", m.Databases[0].Path)
	assert.Contains(t, string(archive.Runbook(m, res.Archive.Path)), "### db: MariaDB database `"+n.database("acme")+"`")

	rr := n.restore(t, "acme", "")
	assert.Equal(t, softdelete.SourceQuarantine, rr.Source)
	assert.Equal(t, want, dumpOf(t, c, n.database("acme")), "back from quarantine, byte for byte")
	assert.False(t, exists(t, db, q.To), "the emptied quarantine is dropped")
	var path string
	run(t, db, "INSERT INTO "+mariadb.QuoteIdent(n.database("acme"))+".oc_files (path) VALUES ('low')")
	require.NoError(t, db.QueryRow("SELECT path FROM "+mariadb.QuoteIdent(n.database("acme"))+".oc_files WHERE id = 4").Scan(&path))
	assert.Equal(t, "LOW", path, "the trigger fires again")
	run(t, db, "DELETE FROM "+mariadb.QuoteIdent(n.database("acme"))+".oc_files WHERE id = 4",
		"ALTER TABLE "+mariadb.QuoteIdent(n.database("acme"))+".oc_files AUTO_INCREMENT = 4")
	want = dumpOf(t, c, n.database("acme"))

	// A tampered quarantine is caught and the archive's dump restored.
	for i, tamper := range []string{
		"UPDATE %s.oc_files SET path = '/b' WHERE id = 1",
		"CREATE TABLE %s.planted (id INT)",
		"DROP VIEW IF EXISTS %s.nosuch", // no change: a control, restored from quarantine
	} {
		res = n.delete(t, "acme")
		q = quarantineOf(t, res, "db")
		run(t, db, fmt.Sprintf(tamper, mariadb.QuoteIdent(q.To)))
		rr = n.restore(t, "acme", "")
		if i == 2 {
			assert.Equal(t, softdelete.SourceQuarantine, rr.Source, "an untouched quarantine comes back")
		} else {
			assert.True(t, strings.HasPrefix(rr.Sources["db"], "archive:"), "%s: %+v", tamper, rr.Sources)
			assert.Contains(t, strings.Join(rr.Notes, "\n"), "does not match its archive")
			assert.Equal(t, "quarantine:"+res.Tombstone.ID, rr.Sources["data"], "the directory still comes from its quarantine")
		}
		assert.Equal(t, want, dumpOf(t, c, n.database("acme")), tamper)
		run(t, db, "DROP DATABASE IF EXISTS "+mariadb.QuoteIdent(q.To))
	}

	// Purge drops the quarantine; the archive still restores.
	res = n.delete(t, "acme")
	q = quarantineOf(t, res, "db")
	_, err = softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: n.archives, Name: "acme", KeepLast: 1, Layouts: []*instance.Layout{n.l},
		Now: time.Now().Add(40 * 24 * time.Hour)})
	require.NoError(t, err)
	assert.False(t, exists(t, db, q.To), "purged")
	n.restore(t, "acme", softdelete.SourceArchive)
	assert.Equal(t, want, dumpOf(t, c, n.database("acme")), "from the archive after the purge")
	assert.Equal(t, other, dumpOf(t, c, n.database("other")), "the other instance was never touched")
	own, err := mariadb.Own(ctx, db)
	require.NoError(t, err)
	for _, o := range own {
		assert.NotContains(t, o, n.prefix, "no quarantine, staging or scratch database left")
	}
}

func TestCheckTemplate(t *testing.T) {
	assert.Equal(t, "", k.CheckTemplate("nextcloud_{name}"))
	for raw, want := range map[string]string{
		"{name}":                  "needs a literal prefix",
		"nextcloud{name}":         "must end with '_'",
		"fstrash_{name}":          "fleetsafe's own",
		"fleetsafe_verify_{name}": "fleetsafe's own",
		"Nextcloud_{name}":        "characters not allowed",
		"n-c_{name}":              "characters not allowed",
		"n_{name}_{name}":         "exactly once",
	} {
		assert.Contains(t, k.CheckTemplate(raw), want, raw)
	}
	c := kind.Component{Name: "db", Template: kind.NewTemplate("nc_{name}")}
	assert.Equal(t, "", k.CheckName(c, strings.Repeat("a", 61)))
	assert.Contains(t, k.CheckName(c, strings.Repeat("a", 62)), "at most 64")
	assert.Equal(t, "", k.CheckName(c, strings.Repeat("é", 61)), "64 characters, not bytes")
	assert.Equal(t, postgresql.ReservedPrefixes, mariadb.ReservedPrefixes, "one set of reserved names on every server")
}

func TestQuarantineTarget_Fits(t *testing.T) {
	q := k.QuarantineTarget(strings.Repeat("é", 64), "20260101T000000.000000Z-0123abcd")
	assert.Equal(t, 64, len([]rune(q)))
	assert.True(t, strings.HasPrefix(q, "fstrash_0123abcd_"))
	s := k.Staging(kind.Target{App: "a", Instance: strings.Repeat("x", 64), Component: kind.Component{Name: "db", Template: kind.NewTemplate("nc_{name}")}})
	assert.Equal(t, 64, len([]rune(s)))
	assert.True(t, strings.HasPrefix(s, mariadb.StagingPrefix))
}

// TestMySQL_HostileNames: instance names with what an instance name may
// hold beyond [a-z0-9-] (non-ASCII letters, dots, @, +, =, :, ^, double
// dashes) soft-delete and come back from quarantine and from the
// archive, byte for byte.
func TestMySQL_HostileNames(t *testing.T) {
	c, db := server(t)
	ctx := context.Background()
	for i, name := range []string{"ünï.c@d+e=f:g-h^", "x.y", "a--b"} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			root, prefix := t.TempDir(), "hn"+suffix()
			dropPrefix(t, db, prefix)
			l, err := instance.ParseLayout([]byte(fmt.Sprintf("app: nc\nname_pattern: '^[a-zï-ü.@+=:^-]+$'\ncomponents:\n  - name: db\n    type: mysql\n    database: %s_{name}\n", prefix)), "nc.yml")
			require.NoError(t, err)
			dbName := prefix + "_" + name
			fill(t, db, dbName)
			want := dumpOf(t, c, dbName)
			opts := instance.Options{SkipSizes: true, SystemdDir: filepath.Join(root, "systemd")}
			archives := filepath.Join(root, "archives")
			for _, source := range []string{softdelete.SourceQuarantine, softdelete.SourceArchive} {
				_, err = softdelete.Delete(ctx, l, softdelete.Request{Name: name, ArchiveDir: archives, Reason: "test", Options: opts})
				require.NoError(t, err)
				require.False(t, exists(t, db, dbName))
				_, err = softdelete.Restore(ctx, l, softdelete.RestoreRequest{Name: name, ArchiveDir: archives, Source: source, Options: opts})
				require.NoError(t, err, source)
				assert.Equal(t, want, dumpOf(t, c, dbName), source)
			}
		})
	}
}

// TestMySQL_StoppedMoveIsFinished: a move into place stopped after its
// RENAME TABLE (the database's tables back, its views, routines,
// triggers and events not yet) is reported by discovery as a problem and
// finished by the next restore (CleanStaging), dumping as before; the
// quarantine it came from is gone.
func TestMySQL_StoppedMoveIsFinished(t *testing.T) {
	c, db := server(t)
	ctx := context.Background()
	n := newNextcloud(t, db)
	n.create(t, db, "acme")
	want := dumpOf(t, c, n.database("acme"))
	res := n.delete(t, "acme")
	q := quarantineOf(t, res, "db")
	// What Restore has done when it stops after its RENAME TABLE.
	name := mariadb.QuoteIdent(n.database("acme"))
	var moves []string
	tables, err := mariadb.Tables(ctx, db, q.To)
	require.NoError(t, err)
	for _, tb := range tables {
		moves = append(moves, mariadb.QuoteIdent(q.To)+"."+mariadb.QuoteIdent(tb.Name)+" TO "+name+"."+mariadb.QuoteIdent(tb.Name))
	}
	run(t, db, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci COMMENT = '"+mariadb.IncomingPrefix+q.To+"'",
		"RENAME TABLE "+strings.Join(moves, ", "))
	insts, err := n.l.Discover(ctx, n.opts)
	require.NoError(t, err)
	require.Len(t, insts, 1)
	st, _ := insts[0].State("db")
	assert.Contains(t, st.Problem, "stopped half-way")
	rr, err := softdelete.Restore(ctx, n.l, softdelete.RestoreRequest{Name: "acme", ArchiveDir: n.archives, Options: n.opts})
	require.NoError(t, err)
	assert.Contains(t, strings.Join(rr.Notes, "\n"), "staging leftover")
	assert.Equal(t, want, dumpOf(t, c, n.database("acme")))
	assert.False(t, exists(t, db, q.To))
}

// TestMySQL_DatabaseAppearsDuringTheMove: a database that appears where a
// move goes is never merged into nor replaced: a quarantine name already
// holding someone's table refuses the quarantine (the instance's database
// untouched), and a database created at the instance's name between the
// staging and the move into place refuses the move (the squatter and the
// staged copy untouched, the staged copy then dropped).
func TestMySQL_DatabaseAppearsDuringTheMove(t *testing.T) {
	c, db := server(t)
	ctx := context.Background()
	n := newNextcloud(t, db)
	n.create(t, db, "acme")
	want := dumpOf(t, c, n.database("acme"))
	env := n.opts.Env()

	m := kind.Move{Component: "db", Type: mysql.Type, From: n.database("acme"), To: k.QuarantineTarget(n.database("acme"), "x-"+n.prefix)}
	run(t, db, "CREATE DATABASE "+mariadb.QuoteIdent(m.To), "CREATE TABLE "+mariadb.QuoteIdent(m.To)+".theirs (id INT)")
	err := k.Quarantine(ctx, env, m)
	var taken *mariadb.TakenError
	require.ErrorAs(t, err, &taken)
	assert.Equal(t, want, dumpOf(t, c, n.database("acme")), "nothing moved")
	tables, err := mariadb.Tables(ctx, db, m.To)
	require.NoError(t, err)
	assert.Len(t, tables, 1, "their table alone")

	// Staged from the instance's own dump, then the name is taken.
	dump := filepath.Join(t.TempDir(), "db.sql")
	f, err := os.Create(dump)
	require.NoError(t, err)
	require.NoError(t, mariadb.Dump(ctx, c, n.database("acme"), f))
	require.NoError(t, f.Close())
	comp, _ := n.l.Component("db")
	tg := kind.Target{App: "nextcloud", Instance: "acme", Component: comp, Locator: n.database("acme")}
	run(t, db, "DROP DATABASE "+mariadb.QuoteIdent(n.database("acme")))
	staged, err := k.Stage(ctx, env, tg, dump)
	require.NoError(t, err)
	run(t, db, "CREATE DATABASE "+mariadb.QuoteIdent(n.database("acme")), "CREATE TABLE "+mariadb.QuoteIdent(n.database("acme"))+".squat (id INT)")
	err = k.PutInPlace(ctx, env, tg, staged)
	require.ErrorAs(t, err, &taken)
	tables, err = mariadb.Tables(ctx, db, n.database("acme"))
	require.NoError(t, err)
	assert.Equal(t, []mariadb.Table{{Name: "squat", Type: "BASE TABLE"}}, tables, "the squatter untouched")
	tables, err = mariadb.Tables(ctx, db, staged)
	require.NoError(t, err)
	assert.Len(t, tables, 4, "the staged copy whole")
	require.NoError(t, k.DropStaging(ctx, env, staged, false))
	assert.False(t, exists(t, db, staged))

	// Once the squatter is gone, the same dump goes in place whole.
	run(t, db, "DROP DATABASE "+mariadb.QuoteIdent(n.database("acme")))
	staged, err = k.Stage(ctx, env, tg, dump)
	require.NoError(t, err)
	require.NoError(t, k.PutInPlace(ctx, env, tg, staged))
	assert.Equal(t, want, dumpOf(t, c, n.database("acme")))
	assert.False(t, exists(t, db, staged))
}
