package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// TestSQLite_Modules: through the instance_soft_delete and
// instance_restore binaries, a SQLite-backed instance whose newest rows
// are only in its -wal is soft-deleted (nothing of it left in place) and
// restored from the archive (source archive) with the same content.
func TestSQLite_Modules(t *testing.T) {
	ctx := context.Background()
	lib := t.TempDir()
	fleettest.BuildFleetsafe(t, lib, "instance_soft_delete", "instance_restore")
	root := t.TempDir()
	layout := filepath.Join(root, "tracim.yml")
	require.NoError(t, os.WriteFile(layout, []byte(fmt.Sprintf("app: tracim\ncomponents:\n"+
		"  - name: db\n    type: sqlite\n    path: %s/srv/{name}/tracim.sqlite\n", root)), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "srv", "acme"), 0o755))
	dbFile := filepath.Join(root, "srv", "acme", "tracim.sqlite")
	walDB(t, dbFile)
	want, err := sqlitedb.Digest(ctx, dbFile)
	require.NoError(t, err)
	archives := filepath.Join(root, "archives")
	common := map[string]any{"name": "acme", "archive_dir": archives, "layout_file": layout, "layouts_dir": filepath.Join(root, "nolayouts")}
	require.NoError(t, os.Mkdir(filepath.Join(root, "nolayouts"), 0o755))

	args := map[string]any{"reason": "test"}
	for k, v := range common {
		args[k] = v
	}
	res := fleettest.RunModule(t, filepath.Join(lib, "instance_soft_delete"), args)
	require.NotEqual(t, true, res["failed"], "%v", res)
	assert.Equal(t, true, res["changed"])
	left, err := sqlitedb.Parts(dbFile)
	require.NoError(t, err)
	assert.Empty(t, left)

	args = map[string]any{"source": "archive"}
	for k, v := range common {
		args[k] = v
	}
	res = fleettest.RunModule(t, filepath.Join(lib, "instance_restore"), args)
	require.NotEqual(t, true, res["failed"], "%v", res)
	require.NoError(t, sqlitedb.CheckDigest(ctx, dbFile, want), "restored from the archive with every row")
	require.NoError(t, sqlitedb.Check(ctx, dbFile))
}
