package mariadb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// hostileNames are database names that break naive quoting: backticks,
// quotes, statement separators, comment starts, a newline, a leading dash
// (an option to a program), dots and slashes (a path), non-ASCII.
var hostileNames = []string{
	"plain",
	"a`b``c",
	"x'; DROP DATABASE mysql; --",
	"new\nline",
	"-dash",
	"dot.and/slash\\back",
	"/* c */ `q` \"d\"",
	"ünïcødé",
}

// setup creates, in database name, tables with rows, a sequence, a
// view over a view, a procedure, a function a view calls, a trigger and
// an event: every kind of object a quarantine moves or recreates.
func setup(name string) []string { return objects(name, true) }

// objects is setup's statements after the CREATE DATABASE, their names
// qualified by the database or not (to run on a connection to it).
func objects(name string, qualify bool) []string {
	q := mariadb.QuoteIdent(name)
	stmts := []string{"CREATE DATABASE " + q + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"}
	if !qualify {
		stmts, q = nil, ""
	}
	p := func(s string) string {
		if q == "" {
			return s
		}
		return q + "." + s
	}
	return append(stmts,
		"CREATE TABLE "+p("`ta``ble`")+" (id INT PRIMARY KEY, v VARCHAR(20), b VARBINARY(8)) ENGINE=InnoDB",
		"CREATE TABLE "+p("child")+" (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES "+p("`ta``ble`")+"(id)) ENGINE=InnoDB",
		"CREATE TABLE "+p("empty")+" (id INT) ENGINE=InnoDB",
		"CREATE TABLE "+p("`my`")+" (id INT) ENGINE=MyISAM",
		"CREATE SEQUENCE "+p("seq"),
		"INSERT INTO "+p("`ta``ble`")+" VALUES (1, 'one', x'00ff'), (2, 'deux 🙂', NULL)",
		"INSERT INTO "+p("child")+" VALUES (10, 1)",
		"INSERT INTO "+p("`my`")+" VALUES (7)",
		"CREATE FUNCTION "+p("twice")+"(x INT) RETURNS INT DETERMINISTIC RETURN 2 * x",
		"CREATE PROCEDURE "+p("`pr oc`")+"() SELECT 1",
		"CREATE VIEW "+p("v1")+" AS SELECT id, "+p("twice")+"(id) AS d FROM "+p("`ta``ble`"),
		"CREATE VIEW "+p("v0")+" AS SELECT d FROM "+p("v1"),
		"CREATE TRIGGER "+p("upper_v")+" BEFORE INSERT ON "+p("`ta``ble`")+" FOR EACH ROW SET NEW.v = UPPER(NEW.v)",
		"CREATE EVENT "+p("nightly")+" ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM "+p("empty"),
	)
}

// TestQuarantineRestore_HostileNames quarantines and restores a database
// holding every kind of object, under names that break naive quoting:
// the quarantine holds every table, the name is free, discovery does not
// take the quarantine for an instance, and after the restore the
// database dumps byte for byte as before (the trigger still fires).
func TestQuarantineRestore_HostileNames(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	for _, base := range hostileNames {
		t.Run(strings.ReplaceAll(base, "/", "_"), func(t *testing.T) {
			t.Parallel()
			name := base + suffix()
			quarantine := instance.QuarantineDBPrefix + suffix()
			dropAfter(t, admin, name, quarantine)
			exec(t, admin, setup(name)...)
			if strings.ContainsAny(name, "'\"\\\n") {
				// mariadb-dump cannot dump the events of such a
				// database: Dump says so before running it.
				err := mariadb.Dump(ctx, c, name, io.Discard)
				var ne *mariadb.NameError
				require.ErrorAs(t, err, &ne)
				assert.Contains(t, err.Error(), "events")
				exec(t, admin, "DROP EVENT "+mariadb.QuoteIdent(name)+".nightly")
			}
			before := dumpOf(t, c, name)

			defs, err := mariadb.ReadDefinitions(ctx, admin, name)
			require.NoError(t, err)
			require.NoError(t, mariadb.Quarantine(ctx, admin, name, quarantine, defs))
			kinds := map[string]int{}
			for _, o := range defs.Objects {
				kinds[o.Kind]++
			}
			want := map[string]int{"VIEW": 2, "FUNCTION": 1, "PROCEDURE": 1, "TRIGGER": 1, "EVENT": 1}
			if strings.ContainsAny(name, "'\"\\\n") {
				delete(want, "EVENT")
			}
			assert.Equal(t, want, kinds)

			ok, err := mariadb.Exists(ctx, admin, name)
			require.NoError(t, err)
			assert.False(t, ok, "the instance's database is gone from its name")
			tables, err := mariadb.Tables(ctx, admin, quarantine)
			require.NoError(t, err)
			assert.Len(t, tables, 5, "every table and the sequence are in quarantine: %v", tables)
			var n int
			require.NoError(t, admin.QueryRow("SELECT COUNT(*) FROM "+mariadb.QuoteIdent(quarantine)+".`ta``ble`").Scan(&n))
			assert.Equal(t, 2, n)
			dbs, err := mariadb.Databases(ctx, admin)
			require.NoError(t, err)
			assert.NotContains(t, dbs, quarantine)
			own, err := mariadb.Own(ctx, admin)
			require.NoError(t, err)
			assert.Contains(t, own, quarantine)

			require.NoError(t, mariadb.Restore(ctx, admin, quarantine, name, defs))
			assert.Equal(t, before, dumpOf(t, c, name), "the restored database dumps as before")
			ok, err = mariadb.Exists(ctx, admin, quarantine)
			require.NoError(t, err)
			assert.False(t, ok, "the emptied quarantine is dropped")
			exec(t, admin, "INSERT INTO "+mariadb.QuoteIdent(name)+".`ta``ble` VALUES (3, 'low', NULL)")
			var v string
			require.NoError(t, admin.QueryRow("SELECT v FROM "+mariadb.QuoteIdent(name)+".`ta``ble` WHERE id = 3").Scan(&v))
			assert.Equal(t, "LOW", v, "the trigger is back")
			require.NoError(t, admin.QueryRow("SELECT d FROM "+mariadb.QuoteIdent(name)+".v0 WHERE d = 4").Scan(&n))
		})
	}
}

// TestQuarantine_RefusesWhileClientsAreConnected keeps a client connected
// to the database: the quarantine refuses, names the client, and moves
// nothing; once the client is gone it proceeds.
func TestQuarantine_RefusesWhileClientsAreConnected(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	name, quarantine := "busy"+suffix(), instance.QuarantineDBPrefix+suffix()
	dropAfter(t, admin, name, quarantine)
	exec(t, admin, "CREATE DATABASE "+name, "CREATE TABLE "+name+".t (id INT)")
	app, err := c.Open(ctx, name)
	require.NoError(t, err)
	conn, err := app.Conn(ctx)
	require.NoError(t, err)

	defs, err := mariadb.ReadDefinitions(ctx, admin, name)
	require.NoError(t, err)
	err = mariadb.Quarantine(ctx, admin, name, quarantine, defs)
	var inUse *mariadb.InUseError
	require.ErrorAs(t, err, &inUse)
	require.Len(t, inUse.Clients, 1)
	assert.Equal(t, "localhost", inUse.Clients[0].Host)
	assert.NotEmpty(t, inUse.Clients[0].User)
	assert.Contains(t, err.Error(), fmt.Sprintf("connection %d of %s@localhost", inUse.Clients[0].ID, inUse.Clients[0].User))
	assert.NotEmpty(t, inUse.Hint())
	tables, err := mariadb.Tables(ctx, admin, name)
	require.NoError(t, err)
	assert.Len(t, tables, 1, "nothing moved")
	ok, err := mariadb.Exists(ctx, admin, quarantine)
	require.NoError(t, err)
	assert.False(t, ok, "no quarantine created")

	conn.Close()
	app.Close()
	require.Eventually(t, func() bool {
		cs, err := mariadb.Clients(ctx, admin, name)
		return err == nil && len(cs) == 0
	}, 2*time.Minute, 50*time.Millisecond, "the closed client is still listed (the server ends it late on a loaded machine, never this late)")
	require.NoError(t, mariadb.Quarantine(ctx, admin, name, quarantine, defs))
}

// TestNames_ReservedAndSystem: an instance's database never has a reserved
// prefix nor is a system schema; a quarantine or a purge only ever
// concerns a reserved name; discovery lists neither.
func TestNames_ReservedAndSystem(t *testing.T) {
	_, admin := server(t)
	ctx := context.Background()
	own := instance.QuarantineDBPrefix + suffix()
	for _, bad := range []string{"mysql", "information_schema", "performance_schema", "sys", own, "fleetsafe_verify_x", ""} {
		err := mariadb.Quarantine(ctx, admin, bad, instance.QuarantineDBPrefix+suffix(), &mariadb.Definitions{Database: bad})
		var ne *mariadb.NameError
		assert.ErrorAs(t, err, &ne, "quarantine of %q", bad)
	}
	for _, bad := range []string{"mysql", "app" + suffix(), "Fstrash_x", ""} {
		_, err := mariadb.Purge(ctx, admin, bad)
		var ne *mariadb.NameError
		assert.ErrorAs(t, err, &ne, "purge of %q", bad)
	}
	err := mariadb.Quarantine(ctx, admin, "app", "notreserved", &mariadb.Definitions{Database: "app"})
	var ne *mariadb.NameError
	assert.ErrorAs(t, err, &ne)

	app := "app" + suffix()
	dropAfter(t, admin, app, own)
	exec(t, admin, "CREATE DATABASE "+app, "CREATE DATABASE "+own)
	dbs, err := mariadb.Databases(ctx, admin)
	require.NoError(t, err)
	assert.Contains(t, dbs, app)
	assert.NotContains(t, dbs, own)
	for _, s := range mariadb.SystemSchemas {
		assert.NotContains(t, dbs, s)
	}
	dropped, err := mariadb.Purge(ctx, admin, own)
	require.NoError(t, err)
	assert.True(t, dropped)
	dropped, err = mariadb.Purge(ctx, admin, own)
	require.NoError(t, err)
	assert.False(t, dropped, "a second purge finds nothing")
}

// TestRestore_RefusesATakenName: a database of the same name holding
// tables is never merged into nor replaced.
func TestRestore_RefusesATakenName(t *testing.T) {
	_, admin := server(t)
	ctx := context.Background()
	name, quarantine := "taken"+suffix(), instance.QuarantineDBPrefix+suffix()
	dropAfter(t, admin, name, quarantine)
	exec(t, admin, "CREATE DATABASE "+name, "CREATE TABLE "+name+".t (id INT)", "INSERT INTO "+name+".t VALUES (1)")
	defs, err := mariadb.ReadDefinitions(ctx, admin, name)
	require.NoError(t, err)
	require.NoError(t, mariadb.Quarantine(ctx, admin, name, quarantine, defs))
	exec(t, admin, "CREATE DATABASE "+name, "CREATE TABLE "+name+".other (id INT)")
	err = mariadb.Restore(ctx, admin, quarantine, name, defs)
	var taken *mariadb.TakenError
	require.ErrorAs(t, err, &taken)
	assert.Equal(t, []string{"other"}, taken.Tables)
	tables, err := mariadb.Tables(ctx, admin, quarantine)
	require.NoError(t, err)
	assert.Len(t, tables, 1, "the quarantine is untouched")
}

// TestQuarantineRestore_CrashAtEveryStep stops a quarantine, then a
// restore, at each of their steps as a crash would (nothing undone), and
// runs it again with the same definitions: the second run finishes, and
// the restored database dumps byte for byte as before.
func TestQuarantineRestore_CrashAtEveryStep(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	steps := []string{"quarantine: created", "quarantine: kept", "quarantine: dropped trigger upper_v", "quarantine: moved",
		"restore: created", "restore: moved", "restore: recreated", "restore: whole"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			name, quarantine := "crash"+suffix(), instance.QuarantineDBPrefix+suffix()
			dropAfter(t, admin, name, quarantine)
			exec(t, admin, setup(name)...)
			before := dumpOf(t, c, name)
			defs, err := mariadb.ReadDefinitions(ctx, admin, name)
			require.NoError(t, err)
			// The definitions travel as JSON in the archive.
			js, err := json.Marshal(defs)
			require.NoError(t, err)
			var kept mariadb.Definitions
			require.NoError(t, json.Unmarshal(js, &kept))

			stop := mariadb.CrashAt(func(s string) bool { return s == step })
			err = mariadb.Quarantine(ctx, admin, name, quarantine, &kept)
			if strings.HasPrefix(step, "quarantine") {
				require.ErrorIs(t, err, mariadb.ErrTestCrash)
				stop()
				require.NoError(t, mariadb.Quarantine(ctx, admin, name, quarantine, &kept), "the second run finishes")
			} else {
				require.NoError(t, err)
				err = mariadb.Restore(ctx, admin, quarantine, name, &kept)
				require.ErrorIs(t, err, mariadb.ErrTestCrash)
				stop()
			}
			stop()
			ok, err := mariadb.Exists(ctx, admin, name)
			require.NoError(t, err)
			if !ok || strings.HasPrefix(step, "restore") {
				require.NoError(t, mariadb.Restore(ctx, admin, quarantine, name, &kept))
			}
			require.NoError(t, mariadb.Restore(ctx, admin, quarantine, name, &kept), "a restore run again after it finished does nothing")
			assert.Equal(t, before, dumpOf(t, c, name))
		})
	}
}

// TestQuarantine_RefusesObjectsNotInTheDefinitions: an object created
// after the definitions were read would be lost with the database:
// nothing moves.
func TestQuarantine_RefusesObjectsNotInTheDefinitions(t *testing.T) {
	_, admin := server(t)
	ctx := context.Background()
	name, quarantine := "late"+suffix(), instance.QuarantineDBPrefix+suffix()
	dropAfter(t, admin, name, quarantine)
	exec(t, admin, "CREATE DATABASE "+name, "CREATE TABLE "+name+".t (id INT)")
	defs, err := mariadb.ReadDefinitions(ctx, admin, name)
	require.NoError(t, err)
	exec(t, admin, "CREATE VIEW "+name+".late AS SELECT 1 AS one")
	err = mariadb.Quarantine(ctx, admin, name, quarantine, defs)
	require.ErrorContains(t, err, "view `late`")
	ok, err := mariadb.Exists(ctx, admin, quarantine)
	require.NoError(t, err)
	assert.False(t, ok, "nothing moved")
}

// TestQuarantine_TwoRunsAtOnce: two quarantines of the same database into
// the same quarantine at once (the per-instance lock of the lifecycle
// failed): at least one succeeds, no table is lost or left behind, and
// the restore gives the database back as it was.
func TestQuarantine_TwoRunsAtOnce(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	for range 3 {
		name, quarantine := "twice"+suffix(), instance.QuarantineDBPrefix+suffix()
		dropAfter(t, admin, name, quarantine)
		exec(t, admin, setup(name)...)
		before := dumpOf(t, c, name)
		defs, err := mariadb.ReadDefinitions(ctx, admin, name)
		require.NoError(t, err)
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- mariadb.Quarantine(ctx, admin, name, quarantine, defs) }()
		}
		e1, e2 := <-errs, <-errs
		require.True(t, e1 == nil || e2 == nil, "one of them succeeds: %v / %v", e1, e2)
		// Whatever the loser said, a further run finds the work done.
		require.NoError(t, mariadb.Quarantine(ctx, admin, name, quarantine, defs))
		ok, err := mariadb.Exists(ctx, admin, name)
		require.NoError(t, err)
		require.False(t, ok)
		tables, err := mariadb.Tables(ctx, admin, quarantine)
		require.NoError(t, err)
		assert.Len(t, tables, 5)
		require.NoError(t, mariadb.Restore(ctx, admin, quarantine, name, defs))
		assert.Equal(t, before, dumpOf(t, c, name))
	}
}

// TestNames_CaseMatters: information_schema compares names without case;
// fleetsafe does not: with "Case…" present, "case…" does not exist, has
// no tables and no clients, and its quarantine is refused as missing.
func TestNames_CaseMatters(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	upper := "Case" + suffix()
	lower := strings.ToLower(upper)
	dropAfter(t, admin, upper)
	exec(t, admin, "CREATE DATABASE "+upper, "CREATE TABLE "+upper+".t (id INT)")
	app, err := c.Open(ctx, upper)
	require.NoError(t, err)
	defer app.Close()
	require.NoError(t, app.PingContext(ctx))
	ok, err := mariadb.Exists(ctx, admin, lower)
	require.NoError(t, err)
	assert.False(t, ok)
	tables, err := mariadb.Tables(ctx, admin, lower)
	require.NoError(t, err)
	assert.Empty(t, tables)
	cs, err := mariadb.Clients(ctx, admin, lower)
	require.NoError(t, err)
	assert.Empty(t, cs)
	cs, err = mariadb.Clients(ctx, admin, upper)
	require.NoError(t, err)
	assert.NotEmpty(t, cs)
	_, err = mariadb.ReadDefinitions(ctx, admin, lower)
	var nf *mariadb.NotFoundError
	assert.ErrorAs(t, err, &nf)
}
