package pgdump_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// TestSearchPathPinned attacks the pin of FINDINGS-5 #5: a database whose
// owner set its search_path to its own schema first (and a PGOPTIONS in
// the environment that names it too) still gives every session of the
// module's role, lib/pq's and psql's alike, the search_path
// pg_catalog, pg_temp; pg_dump still dumps it; only a connection marked
// TenantSearchPath (the temporary restore role's) keeps the database's.
func TestSearchPathPinned(t *testing.T) {
	pg := fleettest.RequirePG(t)
	ctx := context.Background()
	name := "fsspath_" + fleettest.RandomApp()
	admin, err := pg.Open(ctx, "postgres")
	require.NoError(t, err)
	defer admin.Close()
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + pgdump.QuoteIdent(name) + " WITH (FORCE)") })
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(name))
	require.NoError(t, err)
	_, err = admin.ExecContext(ctx, "ALTER DATABASE "+pgdump.QuoteIdent(name)+" SET search_path = public, pg_catalog")
	require.NoError(t, err)

	tenant := pg
	tenant.TenantSearchPath = true
	show := func(c pgdump.Conn) string {
		db, err := c.Open(ctx, name)
		require.NoError(t, err)
		defer db.Close()
		var sp string
		require.NoError(t, db.QueryRowContext(ctx, "SHOW search_path").Scan(&sp))
		return sp
	}
	psql := func(c pgdump.Conn) string {
		cmd := exec.CommandContext(ctx, "psql", "-X", "-At", "-c", "SHOW search_path", "--dbname="+pgdump.DBNameArg(name))
		cmd.Env = c.Env()
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return strings.TrimSpace(string(out))
	}
	require.Equal(t, "public, pg_catalog", show(tenant), "the attack is armed")
	require.Equal(t, "pg_catalog, pg_temp", show(pg), "lib/pq session of the module's role")
	require.Equal(t, "pg_catalog,pg_temp", psql(pg), "psql with the module's environment")

	// A PGOPTIONS of the environment does not undo the pin.
	t.Setenv("PGOPTIONS", "-c search_path=public")
	require.Equal(t, "pg_catalog, pg_temp", show(pg), "lib/pq session under PGOPTIONS")
	require.Equal(t, "pg_catalog,pg_temp", psql(pg), "psql under PGOPTIONS")
	require.Equal(t, "public", psql(tenant), "the tenant's connection keeps its environment")

	// pg_dump sets an empty search_path itself: the pin changes nothing.
	db, err := tenant.Open(ctx, name)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "CREATE TABLE t (i int); INSERT INTO t VALUES (1), (2)")
	db.Close()
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "d.dump")
	require.NoError(t, pgdump.Dump(ctx, pg, name, file))
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.NotZero(t, st.Size())
}
