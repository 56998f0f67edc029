package backup

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// FuzzCheckFileKinds reads arbitrary bytes as mysql_dump and sqlite
// backups, seeded with a real mariadb-dump (plain, gzip, zstd, whole and
// cut) and a real SQLite database (whole and cut): never a panic, a hang
// or a read error on a readable file, and never an empty file accepted.
func FuzzCheckFileKinds(f *testing.F) {
	dump, err := os.ReadFile(filepath.Join("..", "mariadb", "testdata", "small.sql"))
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range [][]byte{dump, gzipOf(dump), zstdOf(dump)} {
		f.Add(uint8(0), b)
		f.Add(uint8(0), b[:len(b)*2/3])
	}
	dbPath := filepath.Join(f.TempDir(), "seed.db")
	db, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES ('a'), ('b')"); err != nil {
		f.Fatal(err)
	}
	db.Close()
	seed, err := os.ReadFile(dbPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(1), seed)
	f.Add(uint8(1), seed[:len(seed)-100])
	formats := []string{FormatMySQLDump, FormatSQLite}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		format := formats[int(which)%len(formats)]
		path := filepath.Join(t.TempDir(), "b")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var res fileResult
		var err error
		fleettest.Deadline(t, 10*time.Second, func() { res, err = checkFile(path, format, false) })
		if err != nil {
			t.Fatalf("a read error on a readable file: %v", err)
		}
		if res.format == nil && len(data) == 0 {
			t.Fatalf("empty %s accepted", format)
		}
	})
}
