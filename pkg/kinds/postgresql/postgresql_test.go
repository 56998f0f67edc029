package postgresql_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

var k postgresql.Kind

func TestCheckTemplate(t *testing.T) {
	assert.Equal(t, "", k.CheckTemplate("tracim_{name}"))
	for raw, want := range map[string]string{
		"{name}":                  "needs a literal prefix",
		"tracim{name}":            "must end with '_'",
		"fstrash_{name}":          "fleetsafe's own",
		"fleetsafe_verify_{name}": "fleetsafe's own",
		"Tracim_{name}":           "characters not allowed",
		"t_{name}_{name}":         "exactly once",
	} {
		assert.Contains(t, k.CheckTemplate(raw), want, raw)
	}
	c := kind.Component{Name: "db", Template: kind.NewTemplate("tracim_{name}")}
	assert.Equal(t, "", k.CheckName(c, strings.Repeat("a", 56)))
	assert.Contains(t, k.CheckName(c, strings.Repeat("a", 57)), "PostgreSQL cuts names at 63 bytes")
}

func TestQuarantineTarget_FitsAndHasPurgingName(t *testing.T) {
	id := "20260101T000000.000000Z-0123abcd"
	q := k.QuarantineTarget(strings.Repeat("x", 63), id)
	assert.Len(t, q, postgresql.MaxDatabaseName)
	assert.True(t, strings.HasPrefix(q, "fstrash_0123abcd_"))
	assert.Len(t, postgresql.PurgingName(q), len(q), "a quarantine name always has a purging name of the same length")
	assert.True(t, strings.HasPrefix(postgresql.PurgingName(q), postgresql.PurgingPrefix))
}

// Quarantine, move back, held, and the purge steps, on the real server:
// each skips what is done already and refuses both names at once.
func TestQuarantineAndPurge_RealServer(t *testing.T) {
	pg := fleettest.RequirePG(t)
	ctx := context.Background()
	env := kind.Env{}.With(postgresql.Type, pg)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "kindtest_" + hex.EncodeToString(b)
	admin, err := pg.Open(ctx, "postgres")
	require.NoError(t, err)
	defer admin.Close()
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(name))
	require.NoError(t, err)
	m := kind.Move{Component: "db", Type: postgresql.Type, From: name, To: k.QuarantineTarget(name, "x-"+hex.EncodeToString(b))}
	t.Cleanup(func() {
		for _, n := range []string{name, m.To, postgresql.PurgingName(m.To)} {
			_, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+pgdump.QuoteIdent(n)+" WITH (FORCE)")
		}
	})

	require.NoError(t, k.Quarantine(ctx, env, m))
	require.NoError(t, k.Quarantine(ctx, env, m), "a move done is skipped")
	held, err := k.Held(ctx, env, m)
	require.NoError(t, err)
	assert.True(t, held)
	var allow bool
	require.NoError(t, admin.QueryRowContext(ctx, "SELECT datallowconn FROM pg_database WHERE datname = $1", m.To).Scan(&allow))
	assert.False(t, allow, "closed to connections in quarantine")

	require.NoError(t, k.Unquarantine(ctx, env, m))
	require.NoError(t, admin.QueryRowContext(ctx, "SELECT datallowconn FROM pg_database WHERE datname = $1", name).Scan(&allow))
	assert.True(t, allow, "open again once back")
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(m.To))
	require.NoError(t, err)
	assert.ErrorContains(t, k.Quarantine(ctx, env, m), "resolve by hand", "both names present")
	_, err = admin.ExecContext(ctx, "DROP DATABASE "+pgdump.QuoteIdent(m.To))
	require.NoError(t, err)

	require.NoError(t, k.Quarantine(ctx, env, m))
	gone, err := k.PurgeCheck(ctx, env, m)
	require.NoError(t, err)
	assert.False(t, gone)
	require.NoError(t, k.PurgeMark(ctx, env, m))
	require.NoError(t, k.PurgeMark(ctx, env, m), "a mark done is skipped")
	require.NoError(t, k.PurgeRemove(ctx, env, m))
	gone, err = k.PurgeCheck(ctx, env, m)
	require.NoError(t, err)
	assert.True(t, gone)
	_, err = k.PurgeCheck(ctx, env, kind.Move{To: "postgres"})
	assert.ErrorContains(t, err, "is not a quarantine database name")
}
