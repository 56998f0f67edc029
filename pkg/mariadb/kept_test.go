package mariadb_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// TestKept_CheckedBeforeAnythingMoves: the definitions a quarantine keeps
// are checked by their sha256, a table planted in the quarantine is
// refused, and a quarantine marked as being purged is no copy to restore:
// each time Restore moves nothing; undone, the same Restore brings the
// database back as it was.
func TestKept_CheckedBeforeAnythingMoves(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	name, quarantine := "kept"+suffix(), instance.QuarantineDBPrefix+suffix()
	dropAfter(t, admin, name, quarantine)
	exec(t, admin, setup(name)...)
	before := dumpOf(t, c, name)
	require.NoError(t, mariadb.Quarantine(ctx, admin, name, quarantine, nil))
	kept, err := mariadb.KeptDefinitions(ctx, admin, quarantine)
	require.NoError(t, err)
	assert.Equal(t, name, kept.Database)
	assert.Len(t, kept.Objects, 6)
	tbl := mariadb.QuoteIdent(quarantine) + "." + mariadb.QuoteIdent(mariadb.DefinitionsTable)
	moved := func() []mariadb.Table {
		ts, err := mariadb.Tables(ctx, admin, quarantine)
		require.NoError(t, err)
		return ts
	}
	require.Len(t, moved(), 5, "the definitions table is not listed as a table of the instance")

	// Edited by hand: the checksum catches it.
	exec(t, admin, "UPDATE "+tbl+" SET definitions = REPLACE(definitions, 'UPPER', 'LOWER')")
	err = mariadb.Restore(ctx, admin, quarantine, name, nil)
	var ke *mariadb.KeptError
	require.ErrorAs(t, err, &ke)
	assert.Contains(t, err.Error(), "sha256")
	assert.False(t, exists(t, admin, name), "nothing moved")
	exec(t, admin, "UPDATE "+tbl+" SET definitions = REPLACE(definitions, 'LOWER', 'UPPER')")

	// A table planted in the quarantine.
	exec(t, admin, "CREATE TABLE "+mariadb.QuoteIdent(quarantine)+".planted (id INT)")
	err = mariadb.Restore(ctx, admin, quarantine, name, nil)
	var stray *mariadb.StrayTablesError
	require.ErrorAs(t, err, &stray)
	assert.Equal(t, []string{"planted"}, stray.Tables)
	assert.False(t, exists(t, admin, name), "nothing moved")
	exec(t, admin, "DROP TABLE "+mariadb.QuoteIdent(quarantine)+".planted")

	// Marked as being purged.
	require.NoError(t, mariadb.MarkPurging(ctx, admin, quarantine))
	purging, err := mariadb.Purging(ctx, admin, quarantine)
	require.NoError(t, err)
	assert.True(t, purging)
	require.Error(t, mariadb.Restore(ctx, admin, quarantine, name, nil))
	assert.False(t, exists(t, admin, name), "nothing moved")
	exec(t, admin, "ALTER DATABASE "+mariadb.QuoteIdent(quarantine)+" COMMENT = ''")

	require.NoError(t, mariadb.Restore(ctx, admin, quarantine, name, nil))
	assert.Equal(t, before, dumpOf(t, c, name))
	assert.False(t, exists(t, admin, quarantine))
}

// TestQuarantine_RefusesAnInstanceTableNamedLikeTheKeptDefinitions: a
// table of the instance named fleetsafe_definitions would meet the
// quarantine's own: refused before anything moves.
func TestQuarantine_RefusesAnInstanceTableNamedLikeTheKeptDefinitions(t *testing.T) {
	_, admin := server(t)
	ctx := context.Background()
	name, quarantine := "clash"+suffix(), instance.QuarantineDBPrefix+suffix()
	dropAfter(t, admin, name, quarantine)
	exec(t, admin, "CREATE DATABASE "+name, "CREATE TABLE "+name+"."+mariadb.DefinitionsTable+" (id INT)")
	err := mariadb.Quarantine(ctx, admin, name, quarantine, nil)
	var ne *mariadb.NameError
	require.ErrorAs(t, err, &ne)
	assert.False(t, exists(t, admin, quarantine))
}

func exists(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	ok, err := mariadb.Exists(context.Background(), db, name)
	require.NoError(t, err)
	return ok
}
