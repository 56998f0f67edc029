package pgdump_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// A database whose name looks like a connection string is dumped and
// restored as itself, never as the database (or server) the string names.
func TestDump_NameThatLooksLikeAConnectionString(t *testing.T) {
	pg := fleettest.RequirePG(t)
	// A bound against a hang: three databases created, filled and dumped
	// take seconds idle, far longer under -race on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin, err := pg.Open(ctx, "postgres")
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() }) // registered first: runs after the drops
	tag := fmt.Sprintf("%d", time.Now().UnixNano()%1000000)
	for _, name := range []string{"fsconn" + tag + " dbname=postgres", "fsconn" + tag + `'q\b`, "postgresql://fsconn" + tag} {
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgdump.QuoteIdent(name)+" WITH (FORCE)")
		_, err := admin.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(name))
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + pgdump.QuoteIdent(name) + " WITH (FORCE)") })
		db, err := pg.Open(ctx, name)
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, "CREATE TABLE public.marker (v text); INSERT INTO public.marker VALUES ('mine')")
		db.Close()
		require.NoError(t, err)

		file := filepath.Join(t.TempDir(), "d.dump")
		require.NoError(t, pgdump.Dump(ctx, pg, name, file), name)
		h, err := os.Open(file)
		require.NoError(t, err)
		hdr, err := pgdump.ReadHeader(h)
		h.Close()
		require.NoError(t, err)
		require.Equal(t, name, hdr.Database, "the dump is of the named database, not of what the name reads as")
	}
}
