package mariadb_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// realDump is a mariadb-dump of a database holding every kind of object
// and rows enough for several INSERT statements, taken once per test run
// from the real server and kept as testdata/small.sql for the tests that
// run without a server.
func realDump(t *testing.T) string {
	c, admin := server(t)
	realDumpOnce.Do(func() {
		name := "dumpcheck" + suffix()
		defer admin.Exec("DROP DATABASE IF EXISTS " + name)
		for _, s := range append(setup(name), "CREATE TABLE "+name+".big (id INT PRIMARY KEY, pad TEXT)",
			"INSERT INTO "+name+".big SELECT seq, REPEAT('x', 10000) FROM "+name+".seq_1_to_300") {
			if _, err := admin.Exec(s); err != nil {
				realDumpErr = err
				return
			}
		}
		var b strings.Builder
		realDumpErr = mariadb.Dump(context.Background(), c, name, &b)
		realDumpText = b.String()
	})
	require.NoError(t, realDumpErr)
	return realDumpText
}

// The dump is taken once for the tests of this file.
var (
	realDumpOnce sync.Once
	realDumpText string
	realDumpErr  error
)

func verify(s string) (*mariadb.DumpSummary, error) { return mariadb.VerifyDump(strings.NewReader(s)) }

// TestVerifyDump_Whole: a real dump passes whole, names its database and
// every table, and counts its INSERT statements.
func TestVerifyDump_Whole(t *testing.T) {
	d := realDump(t)
	sum, err := verify(d)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(sum.Database, "dumpcheck"), sum.Database)
	assert.Equal(t, []string{"`big`", "`child`", "`empty`", "`my`", "`ta``ble`"}, sum.Tables)
	assert.Greater(t, sum.Inserts, int64(4), "the 3 MB table takes several INSERT statements")
	// The committed sample stays a real, whole dump; it is rewritten
	// from the server with FLEETSAFE_UPDATE_TESTDATA=1.
	if os.Getenv("FLEETSAFE_UPDATE_TESTDATA") == "1" {
		c, admin := server(t)
		name := "small"
		dropAfter(t, admin, name)
		exec(t, admin, "CREATE DATABASE "+name)
		local, err := c.Open(context.Background(), name)
		require.NoError(t, err)
		defer local.Close()
		local.SetMaxOpenConns(1)
		exec(t, local, objects(name, false)...)
		var b strings.Builder
		require.NoError(t, mariadb.Dump(context.Background(), c, name, &b))
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(filepath.Join("testdata", "small.sql"), []byte(b.String()), 0o644))
	}
	data, err := os.ReadFile(filepath.Join("testdata", "small.sql"))
	require.NoError(t, err)
	_, err = mariadb.VerifyDump(strings.NewReader(string(data)))
	require.NoError(t, err)
}

// TestVerifyDump_EveryCutFails: a dump cut anywhere, even by its last
// newline, is never complete.
func TestVerifyDump_EveryCutFails(t *testing.T) {
	d := realDump(t)
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(0, len(d)-1).Draw(rt, "cut")
		_, err := verify(d[:n])
		var de *mariadb.DumpError
		if !assert.ErrorAs(rt, err, &de, "cut at %d of %d", n, len(d)) {
			rt.FailNow()
		}
	})
}

var dataSection = regexp.MustCompile("(?s)-- Dumping data for table `[^\n]*\n.*?UNLOCK TABLES;\n")

// TestVerifyDump_ForgedEndFails: a dump cut inside a table's data (between
// its LOCK TABLES and UNLOCK TABLES) or between a table's structure and
// its data, then given a forged closing line, still fails.
func TestVerifyDump_ForgedEndFails(t *testing.T) {
	d := realDump(t)
	var inside [][2]int
	for _, m := range dataSection.FindAllStringIndex(d, -1) {
		lock := strings.Index(d[m[0]:m[1]], "LOCK TABLES")
		inside = append(inside, [2]int{m[0] + lock + 1, m[1] - 2})
	}
	require.NotEmpty(t, inside)
	rapid.Check(t, func(rt *rapid.T) {
		r := inside[rapid.IntRange(0, len(inside)-1).Draw(rt, "section")]
		n := rapid.IntRange(r[0], r[1]).Draw(rt, "cut")
		forged := d[:n] + "\n-- Dump completed on 2026-01-01  0:00:00\n"
		_, err := verify(forged)
		if !assert.Error(rt, err, "cut at %d inside a data section", n) {
			rt.FailNow()
		}
	})
	// Cut after a table's structure, before its data.
	i := strings.Index(d, "-- Dumping data for table `big`")
	_, err := verify(d[:i] + "-- Dump completed on 2026-01-01  0:00:00\n")
	assert.ErrorContains(t, err, "no data section for table(s) `big`")
}

// TestVerifyDump_Forms: what is not a complete dump of data fails with the
// reason; blank lines after the end are fine, anything else is not.
func TestVerifyDump_Forms(t *testing.T) {
	d := realDump(t)
	c, admin := server(t)
	noData := func() string {
		// A --no-data dump of the same database: structure only.
		name := "nodata" + suffix()
		dropAfter(t, admin, name)
		exec(t, admin, "CREATE DATABASE "+name, "CREATE TABLE "+name+".t (id INT)", "INSERT INTO "+name+".t VALUES (1)")
		out, err := runDump(c, name, "--no-data")
		require.NoError(t, err)
		return out
	}()
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", "empty file"},
		{"not a dump", "hello\n", "not a mariadb-dump file"},
		{"a PostgreSQL dump", "--\n-- PostgreSQL database dump\n--\n", "not a mariadb-dump file"},
		{"no closing line", strings.TrimSuffix(d, "\n") + "garbage\n", "stopped before completion"},
		{"content after the end", d + "DROP TABLE x;\n", "stopped before completion"},
		{"no data", noData, "no data section for table(s) `t`"},
		{"closing line without newline", strings.TrimSuffix(d, "\n"), "cut inside it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify(tc.in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			var de *mariadb.DumpError
			require.ErrorAs(t, err, &de)
			assert.NotEmpty(t, de.Hint())
		})
	}
	_, err := verify(d + "\n\n")
	assert.NoError(t, err, "blank lines after the end")
	// A line of 10 MB is read in bounded memory and counted.
	long := strings.Replace(d, "INSERT INTO `empty`", "INSERT INTO `empty` VALUES ("+strings.Repeat("1,", 5<<20)+"1);\nINSERT INTO `empty`", 1)
	_, err = verify(long)
	assert.NoError(t, err)
}

func runDump(c mariadb.Conn, name string, extra ...string) (string, error) {
	// Through the package's own arguments plus extra, the way a backup
	// job might call it.
	var b strings.Builder
	err := mariadb.DumpWith(context.Background(), c, name, &b, extra...)
	return b.String(), err
}

var _ = io.Discard
