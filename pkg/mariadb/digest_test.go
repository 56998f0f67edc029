package mariadb_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// TestTableDigest_QuarantineEqualsOriginal: under hostile names, the
// table digest of a database equals that of its quarantine, and every way
// of changing the quarantine (a row edited, one added, one deleted, a
// table dropped, a table added, a column added, the sequence moved on) is
// caught by CheckQuarantine before anything is renamed back.
func TestTableDigest_QuarantineEqualsOriginal(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	tampers := map[string]string{
		"row edited":      "UPDATE %s.`ta``ble` SET v = 'uno' WHERE id = 1",
		"row added":       "INSERT INTO %s.`my` VALUES (8)",
		"row deleted":     "DELETE FROM %s.child",
		"table dropped":   "DROP TABLE %s.empty",
		"table added":     "CREATE TABLE %s.extra (id INT)",
		"column added":    "ALTER TABLE %s.empty ADD COLUMN x INT",
		"sequence moved":  "SELECT NEXTVAL(%s.seq)",
		"binary changed":  "UPDATE %s.`ta``ble` SET b = x'00fe' WHERE id = 1",
		"engine changed":  "ALTER TABLE %s.`my` ENGINE=InnoDB",
		"index added":     "CREATE INDEX iv ON %s.`ta``ble` (v)",
		"same-size value": "UPDATE %s.`ta``ble` SET v = 'ONE' WHERE id = 1",
	}
	for _, base := range []string{"a`b``c", "-dot.and/slash\\back"} {
		t.Run(strings.ReplaceAll(base, "/", "_"), func(t *testing.T) {
			name := base + suffix()
			dropAfter(t, admin, name)
			exec(t, admin, setup(name)...)
			if strings.ContainsAny(name, "'\"\\\n") {
				exec(t, admin, "DROP EVENT "+mariadb.QuoteIdent(name)+".nightly")
			}
			want, err := mariadb.TableDigest(ctx, c, name)
			require.NoError(t, err)
			again, err := mariadb.TableDigest(ctx, c, name)
			require.NoError(t, err)
			require.Equal(t, want, again, "the digest is stable")

			defs, err := mariadb.ReadDefinitions(ctx, admin, name)
			require.NoError(t, err)
			quarantine := instance.QuarantineDBPrefix + suffix()
			dropAfter(t, admin, quarantine)
			require.NoError(t, mariadb.Quarantine(ctx, admin, name, quarantine, defs))
			require.NoError(t, mariadb.CheckQuarantine(ctx, c, quarantine, name, want), "an untouched quarantine matches")

			for what, stmt := range tampers {
				// Each tamper on a copy of the quarantine, so that
				// they do not add up.
				cp := instance.QuarantineDBPrefix + suffix()
				dropAfter(t, admin, cp)
				copyTables(t, c, quarantine, cp)
				require.NoError(t, mariadb.CheckQuarantine(ctx, c, cp, name, want), "the copy matches before %s", what)
				exec(t, admin, strings.ReplaceAll(stmt, "%s", mariadb.QuoteIdent(cp)))
				err := mariadb.CheckQuarantine(ctx, c, cp, name, want)
				var me *mariadb.DigestMismatchError
				assert.ErrorAs(t, err, &me, what)
			}
			require.NoError(t, mariadb.Restore(ctx, admin, quarantine, name, defs))
			got, err := mariadb.TableDigest(ctx, c, name)
			require.NoError(t, err)
			assert.Equal(t, want, got, "restored, the database has its digest back")
		})
	}
	_, err := mariadb.TableDigest(ctx, c, "no_such_db_"+suffix())
	var nf *mariadb.NotFoundError
	assert.ErrorAs(t, err, &nf)
}

// copyTables copies the tables of database from into a new database to
// through a dump.
func copyTables(t *testing.T, c mariadb.Conn, from, to string) {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	require.NoError(t, mariadb.DumpWith(ctx, c, from, &b))
	_, admin := server(t)
	exec(t, admin, "CREATE DATABASE "+mariadb.QuoteIdent(to)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	require.NoError(t, mariadb.Load(ctx, c, to, strings.NewReader(b.String())))
}

// TestTableDigest_CounterIsNotContent: two databases with the same tables
// and rows whose AUTO_INCREMENT counters differ (a bulk insert's values
// reserved and never used, which InnoDB may forget when it opens the table
// again) have one digest; a row of difference still tells them apart.
func TestTableDigest_CounterIsNotContent(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	a, b := "ai_a"+suffix(), "ai_b"+suffix()
	dropAfter(t, admin, a, b)
	for _, db := range []string{a, b} {
		exec(t, admin, "CREATE DATABASE "+mariadb.QuoteIdent(db))
	}
	exec(t, admin,
		"CREATE TABLE "+mariadb.QuoteIdent(a)+".t (id INT PRIMARY KEY AUTO_INCREMENT, v INT) ENGINE=InnoDB",
		"INSERT INTO "+mariadb.QuoteIdent(a)+".t (v) SELECT seq FROM mysql.seq_1_to_12",
		"CREATE TABLE "+mariadb.QuoteIdent(b)+".t (id INT PRIMARY KEY AUTO_INCREMENT, v INT) ENGINE=InnoDB AUTO_INCREMENT=40",
		"INSERT INTO "+mariadb.QuoteIdent(b)+".t (id, v) SELECT seq, seq FROM mysql.seq_1_to_12")
	counter := func(db string) int64 {
		var n int64
		require.NoError(t, admin.QueryRowContext(ctx, "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't'", db).Scan(&n))
		return n
	}
	require.NotEqual(t, counter(a), counter(b), "the two counters differ")
	da, err := mariadb.TableDigest(ctx, c, a)
	require.NoError(t, err)
	db, err := mariadb.TableDigest(ctx, c, b)
	require.NoError(t, err)
	assert.Equal(t, da, db, "same tables and rows, counters apart: one digest")

	exec(t, admin, "UPDATE "+mariadb.QuoteIdent(b)+".t SET v = 99 WHERE id = 12")
	db, err = mariadb.TableDigest(ctx, c, b)
	require.NoError(t, err)
	assert.NotEqual(t, da, db, "a row changed: digests differ")
}

// TestCompareWithDump_CountersComeBackAsArchived: a quarantine whose rows
// are the archived ones but whose AUTO_INCREMENT counter is lower (here
// lowered by hand, as InnoDB does when it forgets values a bulk insert
// reserved) matches its archived dump, and comes back with the archived
// counter, as a restore from the archive would give it.
func TestCompareWithDump_CountersComeBackAsArchived(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	name := "ai_c" + suffix()
	quarantine := instance.QuarantineDBPrefix + suffix()
	dropAfter(t, admin, name, quarantine)
	q := mariadb.QuoteIdent(name)
	exec(t, admin, "CREATE DATABASE "+q,
		"CREATE TABLE "+q+".t (id INT PRIMARY KEY AUTO_INCREMENT, v INT) ENGINE=InnoDB AUTO_INCREMENT=40",
		"INSERT INTO "+q+".t (id, v) SELECT seq, seq FROM mysql.seq_1_to_12")
	counter := func(db string) int64 {
		var n int64
		require.NoError(t, admin.QueryRowContext(ctx, "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't'", db).Scan(&n))
		return n
	}
	require.EqualValues(t, 40, counter(name))
	var dump bytes.Buffer
	require.NoError(t, mariadb.Dump(ctx, c, name, &dump))
	defs, err := mariadb.ReadDefinitions(ctx, admin, name)
	require.NoError(t, err)
	require.NoError(t, mariadb.Quarantine(ctx, admin, name, quarantine, defs))
	exec(t, admin, "ALTER TABLE "+mariadb.QuoteIdent(quarantine)+".t AUTO_INCREMENT = 13")
	require.EqualValues(t, 13, counter(quarantine), "the quarantine's counter is lower than the archived one")

	why, err := mariadb.CompareWithDump(ctx, c, quarantine, name, bytes.NewReader(dump.Bytes()))
	require.NoError(t, err)
	require.Empty(t, why, "the same rows: the quarantine matches")
	require.EqualValues(t, 40, counter(quarantine), "the quarantine took the archived counter")
	require.NoError(t, mariadb.Restore(ctx, admin, quarantine, name, nil))
	assert.EqualValues(t, 40, counter(name), "restored with the archived counter")

	exec(t, admin, "UPDATE "+q+".t SET v = 0 WHERE id = 3")
	var again bytes.Buffer
	require.NoError(t, mariadb.Dump(ctx, c, name, &again))
	q2 := instance.QuarantineDBPrefix + suffix()
	dropAfter(t, admin, q2)
	defs, err = mariadb.ReadDefinitions(ctx, admin, name)
	require.NoError(t, err)
	require.NoError(t, mariadb.Quarantine(ctx, admin, name, q2, defs))
	why, err = mariadb.CompareWithDump(ctx, c, q2, name, bytes.NewReader(dump.Bytes()))
	require.NoError(t, err)
	assert.NotEmpty(t, why, "a row of difference is still refused")
}
