package mariadb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// TestRestoreDump_AfterPurge: the whole life of a database: dump,
// quarantine, purge, then restore from the dump alone: it dumps byte for
// byte as before. A dump cut short restores nothing under the name, and
// an existing name is never loaded into.
func TestRestoreDump_AfterPurge(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	name, quarantine := "life"+suffix(), instance.QuarantineDBPrefix+suffix()
	dropAfter(t, admin, name, quarantine)
	exec(t, admin, setup(name)...)
	before := dumpOf(t, c, name)
	defs, err := mariadb.ReadDefinitions(ctx, admin, name)
	require.NoError(t, err)
	require.NoError(t, mariadb.Quarantine(ctx, admin, name, quarantine, defs))
	dropped, err := mariadb.Purge(ctx, admin, quarantine)
	require.NoError(t, err)
	require.True(t, dropped)

	// Cut inside a statement (the client fails), and at a statement
	// boundary (the client alone would succeed).
	for _, cut := range []string{before[:strings.Index(before, "INSERT INTO `child`")+25], before[:strings.Index(before, "-- Table structure for table `empty`")]} {
		err = mariadb.RestoreDump(ctx, c, name, defs.Charset, defs.Collation, strings.NewReader(cut))
		var se *mariadb.StateError
		require.ErrorAs(t, err, &se)
		assert.Contains(t, se.State, "was dropped again")
		ok, err := mariadb.Exists(ctx, admin, name)
		require.NoError(t, err)
		assert.False(t, ok, "nothing half-loaded under the name")
	}

	require.NoError(t, mariadb.RestoreDump(ctx, c, name, defs.Charset, defs.Collation, strings.NewReader(before)))
	assert.Equal(t, before, dumpOf(t, c, name))
	var coll string
	require.NoError(t, admin.QueryRow("SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&coll))
	assert.Equal(t, "utf8mb4_unicode_ci", coll)

	err = mariadb.RestoreDump(ctx, c, name, "", "", strings.NewReader(before))
	var taken *mariadb.TakenError
	require.ErrorAs(t, err, &taken)
}
