package backup

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"
)

// TestSQLite_Format: a SQLite database passes, with its sha256 sidecar;
// the same file cut short, a text file and a compressed database fail as
// FormatErrors, never as an error of the run.
func TestSQLite_Format(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.db")
	db, err := sql.Open("sqlite", "file:"+p)
	require.NoError(t, err)
	_, err = db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); INSERT INTO t (v) SELECT randomblob(5000) FROM (SELECT 1 UNION SELECT 2 UNION SELECT 3)")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	whole, err := os.ReadFile(p)
	require.NoError(t, err)

	res, err := checkFile(p, FormatSQLite, false)
	require.NoError(t, err)
	assert.Nil(t, res.format)
	assert.True(t, res.checked)

	for name, b := range map[string][]byte{
		"cut":  whole[:len(whole)-4096],
		"text": []byte("hello"),
		"gzip": gzipOf(whole),
		"zstd": zstdOf(whole),
	} {
		q := writeTemp(t, dir, name+".db", b)
		res, err := checkFile(q, FormatSQLite, false)
		require.NoError(t, err, name)
		var fe *FormatError
		assert.ErrorAs(t, res.format, &fe, name)
	}
}
