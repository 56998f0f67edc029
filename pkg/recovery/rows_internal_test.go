package recovery

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// TestCompareRows_FindsARestoreThatLostOrGainedRows: the drill's row
// comparison passes a database restored from its dump, and names the
// table when the restored database holds fewer or more rows than the
// dump (a row lost, a row added) or lacks a table the dump has data for.
func TestCompareRows_FindsARestoreThatLostOrGainedRows(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	db := f.Database("acme")
	files := map[string]string{"pg_custom": filepath.Join(t.TempDir(), "acme.dump"), "pg_plain": filepath.Join(t.TempDir(), "acme.sql")}
	for format, file := range files {
		cmd := exec.Command("pg_dump", "--format="+map[string]string{"pg_custom": "custom", "pg_plain": "plain"}[format], "--file="+file, "--dbname="+db)
		cmd.Env = f.PG.Env()
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		require.NoError(t, compareRows(ctx, f.PG, db, format, file), "the dumped database itself, %s", format)
	}

	conn, err := f.PG.Open(ctx, db)
	require.NoError(t, err)
	defer conn.Close()
	var tb pgdump.Table
	require.NoError(t, conn.QueryRow(`SELECT schemaname, relname FROM pg_stat_user_tables ORDER BY relname LIMIT 1`).Scan(&tb.Schema, &tb.Name))
	table := tb.String()
	var rows int64
	require.NoError(t, conn.QueryRow("SELECT count(*) FROM "+table).Scan(&rows))
	require.Positive(t, rows, "the fixture's table %s has rows", table)

	_, err = conn.Exec("DELETE FROM " + table + " WHERE ctid = (SELECT min(ctid) FROM " + table + ")")
	require.NoError(t, err)
	for format, file := range files {
		err = compareRows(ctx, f.PG, db, format, file)
		require.Error(t, err, "a row lost, %s", format)
		require.Contains(t, err.Error(), table)
	}

	_, err = conn.Exec("ALTER TABLE " + table + " RENAME TO gone")
	require.NoError(t, err)
	for format, file := range files {
		err = compareRows(ctx, f.PG, db, format, file)
		require.Error(t, err, "a table missing, %s", format)
		require.Contains(t, err.Error(), table)
	}
}
