package backup_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// dbFormatsFleet is a layout whose backup rules name the formats
// mysql_dump and sqlite, parsed from YAML like an operator's file, with
// one instance "acme" and a good backup of each.
func dbFormatsFleet(t *testing.T) (l *instance.Layout, dump, sqliteBackup string) {
	t.Helper()
	root := t.TempDir()
	inst := filepath.Join(root, "srv", "acme")
	require.NoError(t, os.MkdirAll(filepath.Join(inst, "data"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(inst, "app.db"), []byte("x"), 0o644))
	bdir := filepath.Join(root, "backups", "acme")
	require.NoError(t, os.MkdirAll(bdir, 0o755))
	yml := fmt.Sprintf(`app: demo
components:
  - name: data
    type: dir
    path: %[1]s/srv/{name}/data
  - name: db
    type: file
    path: %[1]s/srv/{name}/app.db
backups:
  - component: data
    path: %[1]s/backups/{name}/db-*.sql
    format: mysql_dump
    max_age: 26h
  - component: db
    path: %[1]s/backups/{name}/app-*.sqlite
    format: sqlite
    max_age: 26h
`, root)
	l, err := instance.ParseLayout([]byte(yml), "dbformats.yml")
	require.NoError(t, err)

	plain, err := os.ReadFile(filepath.Join("..", "mariadb", "testdata", "small.sql"))
	require.NoError(t, err)
	dump = filepath.Join(bdir, "db-1.sql")
	require.NoError(t, os.WriteFile(dump, plain, 0o644))

	src := filepath.Join(root, "live.db")
	db, err := sql.Open("sqlite", "file:"+src)
	require.NoError(t, err)
	_, err = db.Exec(`PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);`)
	require.NoError(t, err)
	for i := range 300 {
		_, err = db.Exec(`INSERT INTO t(v) VALUES (?)`, fmt.Sprintf("row %d %x", i, bytes.Repeat([]byte{byte(i)}, 40)))
		require.NoError(t, err)
	}
	sqliteBackup = filepath.Join(bdir, "app-1.sqlite")
	_, err = sqlitedb.Copy(context.Background(), src, sqliteBackup)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	for _, p := range []string{dump, sqliteBackup} {
		old := time.Now().Add(-time.Hour)
		require.NoError(t, os.Chtimes(p, old, old))
	}
	return l, dump, sqliteBackup
}

func verifyDB(t *testing.T, l *instance.Layout) *backup.Report {
	t.Helper()
	rep, err := backup.Verify(context.Background(), l, backup.Options{Now: time.Now()})
	require.NoError(t, err)
	return rep
}

// TestVerify_DBFormats: a layout may name mysql_dump and sqlite; good
// backups pass, and each way of breaking one (a dump cut before its
// closing line, a dump whose table's data section is gone though it still
// ends with "-- Dump completed", a sqlite file with a damaged page, one cut
// short) fails the format check of that component only.
func TestVerify_DBFormats(t *testing.T) {
	t.Run("good", func(t *testing.T) {
		l, _, _ := dbFormatsFleet(t)
		rep := verifyDB(t, l)
		assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "data", backup.CheckFormat).Status)
		assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "db", backup.CheckFormat).Status)
		assert.Equal(t, backup.StatusOK, status(t, rep, "acme"), "%+v", rep.Instances)
	})
	cases := []struct {
		name, component string
		breakIt         func(t *testing.T, dump, sq string)
	}{
		{"dump without its closing line", "data", func(t *testing.T, dump, _ string) {
			rewrite(t, dump, func(b []byte) []byte {
				i := bytes.Index(b, []byte("-- Dump completed"))
				require.Positive(t, i)
				return b[:i]
			}, false)
		}},
		{"dump cut inside a table's data", "data", func(t *testing.T, dump, _ string) {
			rewrite(t, dump, func(b []byte) []byte {
				i := bytes.Index(b, []byte("INSERT INTO `my`"))
				require.Positive(t, i)
				return b[:i+20]
			}, false)
		}},
		{"dump with a table's data section missing", "data", func(t *testing.T, dump, _ string) {
			rewrite(t, dump, func(b []byte) []byte {
				i := bytes.Index(b, []byte("--\n-- Dumping data for table `child`"))
				j := bytes.Index(b, []byte("--\n-- Table structure for table `empty`"))
				require.True(t, i > 0 && j > i)
				require.Contains(t, string(b[j:]), "-- Dump completed")
				return append(append([]byte{}, b[:i]...), b[j:]...)
			}, false)
		}},
		{"sqlite with a damaged page", "db", func(t *testing.T, _, sq string) {
			rewrite(t, sq, func(b []byte) []byte {
				// The b-tree page header of the second page (the
				// file header stays valid): integrity_check's case,
				// not the header's. (A changed byte inside a row's
				// text is beyond any format check: the checksum
				// sidecar is for that.)
				h := 4096
				for i := h; i < h+12; i++ {
					b[i] ^= 0xa5
				}
				return b
			}, false)
		}},
		{"sqlite cut short", "db", func(t *testing.T, _, sq string) {
			rewrite(t, sq, func(b []byte) []byte { return b[:len(b)-1000] }, false)
		}},
		{"not a sqlite file", "db", func(t *testing.T, _, sq string) {
			rewrite(t, sq, func(b []byte) []byte { return bytes.Repeat([]byte("not sqlite\n"), 200) }, false)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, dump, sq := dbFormatsFleet(t)
			c.breakIt(t, dump, sq)
			rep := verifyDB(t, l)
			got := check(t, rep, "acme", c.component, backup.CheckFormat)
			assert.Equal(t, backup.StatusFailed, got.Status, "%+v", got)
			assert.IsType(t, &backup.FormatError{}, got.Finding)
			assert.NotEmpty(t, got.Hint)
			other := map[string]string{"data": "db", "db": "data"}[c.component]
			assert.Equal(t, backup.StatusOK, check(t, rep, "acme", other, backup.CheckFormat).Status, "the other component stays ok")
		})
	}
}
