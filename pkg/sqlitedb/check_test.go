package sqlitedb_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// sampleDB writes a database of a few hundred pages: two tables with an
// index, rows spanning overflow pages.
func sampleDB(t testing.TB, dir string) string {
	p := filepath.Join(dir, "sample.db")
	db := openDB(t, p, "PRAGMA page_size = 1024", "CREATE TABLE a (id INTEGER PRIMARY KEY, v BLOB)", "CREATE TABLE b (id INTEGER PRIMARY KEY, v BLOB)",
		"CREATE INDEX av ON a(v)")
	_, err := db.Exec("BEGIN")
	require.NoError(t, err)
	for range 100 {
		_, err := db.Exec("INSERT INTO a (v) VALUES (randomblob(900)); INSERT INTO b (v) VALUES (randomblob(3000))")
		require.NoError(t, err)
	}
	_, err = db.Exec("COMMIT")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	return p
}

// TestCheck_Damage: a whole database passes; the same cut anywhere past
// its header, or with a table or index page lost, fails.
func TestCheck_Damage(t *testing.T) {
	dir := t.TempDir()
	whole, err := os.ReadFile(sampleDB(t, dir))
	require.NoError(t, err)
	ctx := context.Background()
	p := filepath.Join(dir, "x.db")
	require.NoError(t, os.WriteFile(p, whole, 0o644))
	require.NoError(t, sqlitedb.Check(ctx, p))

	// The b-tree pages (tables and indexes): their first byte is their
	// type. integrity_check proves structure, not the bytes of a value:
	// an overflow page's content may change unseen.
	var btree []int
	for page := 1; page < len(whole)/1024; page++ {
		switch whole[page*1024] {
		case 2, 5, 10, 13:
			btree = append(btree, page)
		}
	}
	require.Greater(t, len(btree), 10)
	rapid.Check(t, func(rt *rapid.T) {
		var b []byte
		if rapid.Bool().Draw(rt, "cut") {
			b = whole[:rapid.IntRange(0, len(whole)-1).Draw(rt, "at")]
		} else {
			// Zero one b-tree page (a lost write).
			page := btree[rapid.IntRange(0, len(btree)-1).Draw(rt, "page")]
			b = append([]byte{}, whole...)
			clear(b[page*1024 : (page+1)*1024])
		}
		require.NoError(rt, os.WriteFile(p, b, 0o644))
		err := sqlitedb.Check(ctx, p)
		var ce *sqlitedb.CorruptError
		if !assert.ErrorAs(rt, err, &ce) {
			rt.FailNow()
		}
	})
}

// TestCheck_NotAlone: a file with a -wal or -journal beside it is not a
// whole database by itself; Check creates nothing beside the file.
func TestCheck_NotAlone(t *testing.T) {
	dir := t.TempDir()
	p := sampleDB(t, dir)
	ctx := context.Background()
	require.NoError(t, sqlitedb.Check(ctx, p))
	ents, _ := os.ReadDir(dir)
	assert.Len(t, ents, 1, "nothing created beside the file")
	require.NoError(t, os.WriteFile(p+"-wal", []byte("x"), 0o644))
	assert.ErrorContains(t, sqlitedb.Check(ctx, p), "-wal")
}
