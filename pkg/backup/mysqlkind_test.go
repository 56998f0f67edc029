package backup_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// mysqlFleet is a layout with a mysql component (a database of the real
// MariaDB server, "acme"'s with tables, rows, a view and a trigger) and a
// mysql_dump backup rule; it returns the layout, the backup directory of
// acme and a real dump of its database.
func mysqlFleet(t *testing.T) (l *instance.Layout, bdir string, dump []byte, prefix string) {
	t.Helper()
	c := fleettest.RequireMariaDB(t)
	ctx := context.Background()
	admin, err := c.Open(ctx, "")
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix = "bk" + hex.EncodeToString(b)
	for _, n := range []string{"acme", "other"} {
		db := mariadb.QuoteIdent(prefix + "_" + n)
		t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + db) })
		for _, s := range []string{"CREATE DATABASE " + db, "CREATE TABLE " + db + ".a (id INT PRIMARY KEY, v TEXT)",
			"CREATE TABLE " + db + ".b (id INT)", "INSERT INTO " + db + ".a VALUES (1, 'x'), (2, 'y')", "INSERT INTO " + db + ".b VALUES (7)",
			"CREATE VIEW " + db + ".v AS SELECT id FROM " + db + ".a",
			"CREATE TRIGGER " + db + ".t BEFORE INSERT ON " + db + ".b FOR EACH ROW SET NEW.id = NEW.id + 1"} {
			_, err := admin.Exec(s)
			require.NoError(t, err, s)
		}
	}
	var out bytes.Buffer
	require.NoError(t, mariadb.Dump(ctx, c, prefix+"_acme", &out))
	root := t.TempDir()
	bdir = filepath.Join(root, "backups", "acme")
	require.NoError(t, os.MkdirAll(bdir, 0o755))
	l, err = instance.ParseLayout([]byte(fmt.Sprintf(`app: nc
components:
  - name: db
    type: mysql
    database: %s_{name}
backups:
  - component: db
    path: %s/backups/{name}/db-*
    format: mysql_dump
    max_age: 26h
`, prefix, root)), "nc.yml")
	require.NoError(t, err)
	return l, bdir, out.Bytes(), prefix
}

// put writes a backup file, made age old.
func put(t *testing.T, dir, name string, data []byte, age time.Duration) {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o644))
	old := time.Now().Add(-age)
	require.NoError(t, os.Chtimes(p, old, old))
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func zst(b []byte) []byte {
	w, _ := zstd.NewWriter(nil)
	return w.EncodeAll(b, nil)
}

// TestVerify_MySQLComponent: backup_verify on a mysql component, plain,
// gzip and zstd: a good dump passes the format check, is this instance's
// database, and restores into a scratch database with the live row
// counts; a dump cut before its closing line, one whose table's data
// section is gone, and a dump of another instance's database fail (and
// are not restored); a dump missing a table the live database has fails
// the restore test.
func TestVerify_MySQLComponent(t *testing.T) {
	ctx := context.Background()
	forms := map[string]func([]byte) []byte{"plain": func(b []byte) []byte { return b }, "gzip": gz, "zstd": zst}
	for form, enc := range forms {
		t.Run(form, func(t *testing.T) {
			l, bdir, dump, prefix := mysqlFleet(t)
			verify := func() *backup.Report {
				rep, err := backup.Verify(ctx, l, backup.Options{Now: time.Now(), RestoreTest: 1})
				require.NoError(t, err)
				return rep
			}
			put(t, bdir, "db-1", enc(dump), time.Hour)
			rep := verify()
			assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "db", backup.CheckFormat).Status)
			found := false
			for _, c := range rep.Instances[0].Checks {
				if c.Check == backup.CheckOwner {
					assert.Equal(t, backup.StatusOK, c.Status, "%+v", c)
					found = found || c.Detail == "dump of database "+prefix+"_acme, this instance's"
				}
			}
			assert.True(t, found, "the dump's database is checked: %+v", rep.Instances[0].Checks)
			rt := check(t, rep, "acme", "db", backup.CheckRestore)
			assert.Equal(t, backup.StatusOK, rt.Status, "%+v", rt)
			assert.Contains(t, rt.Detail, "row counts match")

			i := bytes.Index(dump, []byte("-- Dump completed"))
			j := bytes.Index(dump, []byte("--\n-- Dumping data for table `b`"))
			k := bytes.Index(dump, []byte("--\n-- Temporary table structure for view `v`"))
			require.True(t, i > 0 && j > 0 && k > j)
			var other bytes.Buffer
			require.NoError(t, mariadb.Dump(ctx, mariadb.Conn{}, prefix+"_other", &other))
			for what, broken := range map[string][]byte{
				"no closing line":     dump[:i],
				"a table's data gone": append(append([]byte{}, dump[:j]...), dump[k:]...),
				"another's database":  other.Bytes(),
				"cut inside the data": dump[:j+60],
			} {
				put(t, bdir, "db-2", enc(broken), time.Minute)
				rep = verify()
				c := check(t, rep, "acme", "db", backup.CheckFormat)
				if what == "another's database" {
					c = findingOf(t, rep, "acme", backup.CheckOwner)
					assert.IsType(t, &backup.DatabaseMismatchError{}, c.Finding, what)
				} else {
					assert.IsType(t, &backup.FormatError{}, c.Finding, what)
				}
				assert.Equal(t, backup.StatusFailed, c.Status, "%s: %+v", what, c)
				assert.Equal(t, backup.StatusFailed, status(t, rep, "acme"), what)
				require.NoError(t, os.Remove(filepath.Join(bdir, "db-2")))
			}

			// A table the live database has and the backup lacks.
			_, err := mariadb.Conn{}.Open(ctx, "")
			require.NoError(t, err)
			admin, _ := mariadb.Conn{}.Open(ctx, "")
			defer admin.Close()
			_, err = admin.Exec("CREATE TABLE " + mariadb.QuoteIdent(prefix+"_acme") + ".c (id INT)")
			require.NoError(t, err)
			rep = verify()
			rt = check(t, rep, "acme", "db", backup.CheckRestore)
			assert.Equal(t, backup.StatusFailed, rt.Status, "%+v", rt)
			assert.Contains(t, rt.Detail, "missing from the backup: c")
		})
	}
}

// findingOf returns the failed check of that name of an instance.
func findingOf(t *testing.T, rep *backup.Report, name, check string) backup.CheckResult {
	t.Helper()
	for _, i := range rep.Instances {
		for _, c := range i.Checks {
			if i.Name == name && c.Check == check && c.Finding != nil {
				return c
			}
		}
	}
	t.Fatalf("no failed %s check for %s: %+v", check, name, rep.Instances)
	return backup.CheckResult{}
}
