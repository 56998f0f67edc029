package pgdump_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// The plain script of an unchanged database equals the one pg_restore
// renders from its custom dump; a changed row, a new trigger or a changed
// sequence makes them differ. Restore relies on both to trust a
// quarantined database.
func TestDigest_SameContentSameDigestAnyChangeDiffers(t *testing.T) {
	pg := fleettest.RequirePG(t)
	ctx := context.Background()
	name := "fsdigest_" + fleettest.RandomApp()
	admin, err := pg.Open(ctx, "postgres")
	require.NoError(t, err)
	defer admin.Close()
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + pgdump.QuoteIdent(name) + " WITH (FORCE)") })
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(name))
	require.NoError(t, err)
	// The application's session (the module's pin their search_path).
	app := pg
	app.TenantSearchPath = true
	db, err := app.Open(ctx, name)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ExecContext(ctx, `CREATE TABLE t (id int PRIMARY KEY, v text, b bytea);
		INSERT INTO t SELECT g, md5(g::text), decode(md5(g::text), 'hex') FROM generate_series(1, 500) g;
		CREATE SEQUENCE s; SELECT setval('s', 42); CREATE INDEX ON t (v);
		CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'`)
	require.NoError(t, err)

	dump := filepath.Join(t.TempDir(), "d.pgdump")
	require.NoError(t, pgdump.Dump(ctx, pg, name, dump))
	want, err := pgdump.ArchiveDigest(ctx, dump)
	require.NoError(t, err)
	got, err := pgdump.PlainDigest(ctx, pg, name)
	require.NoError(t, err)
	require.Equal(t, want, got, "an unchanged database and its dump")

	for _, change := range []string{
		"UPDATE t SET v = 'x' WHERE id = 7",
		"CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
		"SELECT nextval('s')",
	} {
		_, err := db.ExecContext(ctx, change)
		require.NoError(t, err)
		now, err := pgdump.PlainDigest(ctx, pg, name)
		require.NoError(t, err)
		assert.NotEqual(t, got, now, "after %s", change)
		got = now
	}
}
