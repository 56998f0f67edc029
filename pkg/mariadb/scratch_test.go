package mariadb_test

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// TestScratchRestore_RealDump restores a real dump of a database holding
// every kind of object (DEFINER root included) as the scratch user: the
// row counts match the live database, and the scratch database and user
// are gone afterwards.
func TestScratchRestore_RealDump(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	name := "scratchsrc" + suffix()
	dropAfter(t, admin, name)
	exec(t, admin, "CREATE DATABASE "+name)
	local, err := c.Open(ctx, name)
	require.NoError(t, err)
	defer local.Close()
	local.SetMaxOpenConns(1)
	exec(t, local, objects(name, false)...)
	dump := dumpOf(t, c, name)
	assert.NotContains(t, dump, name+"`.", "objects created unqualified dump unqualified")
	require.Contains(t, dump, "DEFINER=`root`@`localhost`")
	names, stop := mariadb.TrackScratch()
	defer stop()
	sc, err := mariadb.ScratchRestore(ctx, c, "dump.sql", strings.NewReader(dump))
	require.NoError(t, err)
	want, err := mariadb.TableCounts(ctx, admin, name)
	require.NoError(t, err)
	assert.Equal(t, want, sc.Counts)
	assert.Equal(t, int64(2), sc.Counts["ta`ble"])
	require.Equal(t, []string{sc.Database}, names())
	assertGone(t, admin, sc.Database)
}

func assertGone(t *testing.T, admin *sql.DB, name string) {
	t.Helper()
	ok, err := mariadb.Exists(context.Background(), admin, name)
	require.NoError(t, err)
	assert.False(t, ok, "scratch database %s dropped", name)
	var users int
	require.NoError(t, admin.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User = ?", name).Scan(&users))
	assert.Zero(t, users, "scratch user %s dropped", name)
}

// TestScratchRestore_RefusesWhatReachesBeyond feeds forged dumps that try
// to act beyond the scratch database: each fails, and the victim
// database, the server's users and settings and the client's files are as
// before. Those the guard does not recognise (a qualified INSERT into
// another database, a trigger that writes there) fail on the server, for
// lack of privileges.
func TestScratchRestore_RefusesWhatReachesBeyond(t *testing.T) {
	c, admin := server(t)
	ctx := context.Background()
	victim := "victim" + suffix()
	dropAfter(t, admin, victim)
	exec(t, admin, "CREATE DATABASE "+victim, "CREATE TABLE "+victim+".t (id INT)", "INSERT INTO "+victim+".t VALUES (1)")
	base, err := os.ReadFile(filepath.Join("testdata", "small.sql"))
	require.NoError(t, err)
	marker := filepath.Join(t.TempDir(), "pwned")
	var scheduler string
	require.NoError(t, admin.QueryRow("SELECT @@GLOBAL.event_scheduler").Scan(&scheduler))

	cases := []struct {
		name, inject string
		guard        bool // refused by the guard, before the server sees it
	}{
		{"drop database", "DROP DATABASE `" + victim + "`;\n", true},
		{"drop database in an executable comment", "/*!50000 DROP DATABASE `" + victim + "` */;\n", true},
		{"use", "USE `" + victim + "`;\nDELETE FROM t;\n", true},
		{"second statement on an INSERT line", "INSERT INTO `empty` VALUES (1); DROP DATABASE `" + victim + "`;\n", true},
		{"shell escape", "\\! touch " + marker + "\n", true},
		{"system command", "system touch " + marker + "\n", true},
		{"source", "source /etc/passwd\n", true},
		{"outfile", "SELECT 1 INTO OUTFILE '" + marker + "';\n", true},
		{"load data local", "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE `empty`;\n", true},
		{"create user", "CREATE USER evil" + victim + ";\n", true},
		{"grant", "GRANT ALL ON *.* TO CURRENT_USER;\n", true},
		{"set global", "SET GLOBAL event_scheduler = ON;\n", true},
		{"system schema", "INSERT INTO mysql.plugin VALUES ('x', 'y');\n", true},
		{"charset with backslash in characters", "SET NAMES gbk;\n", true},
		{"no backslash escapes", "SET sql_mode = 'NO_BACKSLASH_ESCAPES';\n", true},
		{"cut statement at the end", "", true},
		{"qualified insert", "INSERT INTO `" + victim + "`.t VALUES (666);\n", false},
		{"trigger writing elsewhere", "CREATE DEFINER=`root`@`localhost` TRIGGER tr AFTER INSERT ON `empty` FOR EACH ROW INSERT INTO `" +
			victim + "`.t VALUES (667);\nINSERT INTO `empty` VALUES (5);\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := string(base)
			if tc.inject == "" {
				i := strings.Index(d, "INSERT INTO `child`")
				d = d[:i+30]
			} else {
				i := strings.Index(d, "-- Dumping data for table `empty`")
				d = d[:i] + tc.inject + d[i:]
			}
			names, stop := mariadb.TrackScratch()
			defer stop()
			_, err := mariadb.ScratchRestore(ctx, c, "forged.sql", strings.NewReader(d))
			require.Error(t, err)
			var unsafe *mariadb.UnsafeDumpError
			if tc.guard {
				require.ErrorAs(t, err, &unsafe)
				assert.Contains(t, err.Error(), "forged.sql line ")
			} else {
				var tool *mariadb.ToolError
				require.ErrorAs(t, err, &tool, "the server refuses: %v", err)
				assert.Contains(t, tool.Stderr, "denied")
			}
			var n, sum int64
			require.NoError(t, admin.QueryRow("SELECT COUNT(*), COALESCE(SUM(id), 0) FROM "+victim+".t").Scan(&n, &sum))
			assert.Equal(t, []int64{1, 1}, []int64{n, sum}, "the victim is untouched")
			assert.NoFileExists(t, marker)
			var users int
			require.NoError(t, admin.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'evil%'").Scan(&users))
			assert.Zero(t, users, "no user created")
			var now string
			require.NoError(t, admin.QueryRow("SELECT @@GLOBAL.event_scheduler").Scan(&now))
			assert.Equal(t, scheduler, now)
			// Only this test's scratch databases and users: other
			// packages' tests may share the server.
			require.NotEmpty(t, names())
			for _, s := range names() {
				assertGone(t, admin, s)
			}
		})
	}
}

// TestGuardDump_PassesRealDumps: a real dump goes through whole, only its
// DEFINER clauses rewritten.
func TestGuardDump_PassesRealDumps(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "small.sql"))
	require.NoError(t, err)
	r, refused := mariadb.GuardDump("small.sql", strings.NewReader(string(base)))
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, refused())
	want := strings.ReplaceAll(string(base), "DEFINER=`root`@`localhost`", "DEFINER=CURRENT_USER")
	assert.Equal(t, want, string(out))
}
