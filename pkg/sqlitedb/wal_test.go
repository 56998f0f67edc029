package sqlitedb_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// TestCheck_WALModeFile: a database left in WAL mode, closed cleanly (its
// -wal checkpointed and removed), is whole by itself and passes.
func TestCheck_WALModeFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "wal.db")
	db := openDB(t, p, "PRAGMA journal_mode = WAL", "CREATE TABLE a (id INTEGER)", "INSERT INTO a VALUES (1)")
	require.NoError(t, db.Close())
	h, err := sqlitedb.ReadHeader(p)
	require.NoError(t, err)
	require.True(t, h.WAL)
	require.NoError(t, sqlitedb.Check(context.Background(), p))
	require.NoFileExists(t, p+"-wal")
	require.NoFileExists(t, p+"-shm")
}
