package mariadb_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// Promise: only a quarantine fleetsafe made of the database named passes
// CheckOwned; a planted database with tables and no kept definitions,
// and a real quarantine of another database, are refused, named.
func TestCheckOwned(t *testing.T) {
	_, db := server(t)
	ctx := context.Background()
	s := suffix()
	a, b := "own_"+s+"_a", "own_"+s+"_b"
	qa, qb, planted, empty := mariadb.QuarantinePrefix+"1_"+a, mariadb.QuarantinePrefix+"1_"+b, mariadb.QuarantinePrefix+"2_"+a, mariadb.QuarantinePrefix+"3_"+a
	dropAfter(t, db, a, b, qa, qb, planted, empty)
	exec(t, db, "CREATE DATABASE "+a, "CREATE TABLE "+a+".t (id INT)", "CREATE DATABASE "+b, "CREATE TABLE "+b+".t (id INT)",
		"CREATE DATABASE "+planted, "CREATE TABLE "+planted+".keep (x INT)", "CREATE DATABASE "+empty)
	require.NoError(t, mariadb.Quarantine(ctx, db, a, qa, nil))
	require.NoError(t, mariadb.Quarantine(ctx, db, b, qb, nil))

	require.NoError(t, mariadb.CheckOwned(ctx, db, qa, a))
	require.NoError(t, mariadb.CheckOwned(ctx, db, empty, a), "an empty quarantine holds nothing to lose")
	for _, q := range []string{qb, planted} {
		err := mariadb.CheckOwned(ctx, db, q, a)
		var no *mariadb.NotOursError
		require.True(t, errors.As(err, &no), "%s taken as a quarantine of %s: %v", q, a, err)
		require.Contains(t, err.Error(), q)
	}
	// A purge that stopped after marking: owned, though its definitions
	// may be dropped already.
	require.NoError(t, mariadb.MarkPurging(ctx, db, qa))
	exec(t, db, "DROP TABLE "+qa+"."+mariadb.DefinitionsTable)
	require.NoError(t, mariadb.CheckOwned(ctx, db, qa, a))
}
