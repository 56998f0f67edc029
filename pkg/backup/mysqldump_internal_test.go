package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

func mysqlSample(t testing.TB) []byte {
	data, err := os.ReadFile(filepath.Join("..", "mariadb", "testdata", "small.sql"))
	require.NoError(t, err)
	return data
}

func gzipOf(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func zstdOf(b []byte) []byte {
	zw, _ := zstd.NewWriter(nil)
	return zw.EncodeAll(b, nil)
}

func writeTemp(t testing.TB, dir, name string, b []byte) string {
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

// TestMySQLDump_Format: a real mariadb-dump passes plain, gzip and zstd,
// with its database and data; the same cut anywhere (compressed or not)
// or cut and given a forged closing line inside a table's data fails as
// a FormatError.
func TestMySQLDump_Format(t *testing.T) {
	plain := mysqlSample(t)
	dir := t.TempDir()
	forms := map[string]func([]byte) []byte{"plain": func(b []byte) []byte { return b }, "gzip": gzipOf, "zstd": zstdOf}
	for name, enc := range forms {
		t.Run(name, func(t *testing.T) {
			p := writeTemp(t, dir, "whole."+name, enc(plain))
			res, err := checkFile(p, FormatMySQLDump, false)
			require.NoError(t, err)
			require.Nil(t, res.format)
			assert.Equal(t, "small", res.database)
			assert.Equal(t, dataSome, res.data)
			if name != "plain" {
				assert.Equal(t, name+" mysql_dump", res.kind)
			}
			rapid.Check(t, func(rt *rapid.T) {
				cut := rapid.IntRange(0, len(plain)-1).Draw(rt, "cut")
				forge := rapid.Bool().Draw(rt, "forge")
				b := plain[:cut]
				if forge {
					i := bytes.Index(plain, []byte("INSERT INTO `child`"))
					b = append(append([]byte{}, plain[:i+10]...), "\n-- Dump completed on 2026-01-01  0:00:00\n"...)
				}
				p := writeTemp(t, dir, "cut."+name, enc(b))
				res, err := checkFile(p, FormatMySQLDump, false)
				require.NoError(rt, err)
				var fe *FormatError
				if !assert.ErrorAs(rt, res.format, &fe, "cut at %d, forged %v", cut, forge) {
					rt.FailNow()
				}
			})
			// The compressed stream itself cut short.
			whole := enc(plain)
			if name != "plain" {
				p := writeTemp(t, dir, "streamcut."+name, whole[:len(whole)-8])
				res, err := checkFile(p, FormatMySQLDump, false)
				require.NoError(t, err)
				assert.NotNil(t, res.format)
			}
		})
	}
}

// TestMySQLDump_RestoreTest restores real dumps (plain and gzip) into a
// scratch database and compares them with the live one; rows added since
// are a warning, a table missing from the backup, a cut compressed stream
// and a forged statement are failures; no scratch database is left.
func TestMySQLDump_RestoreTest(t *testing.T) {
	c := mariadb.Conn{}
	ctx := context.Background()
	admin, err := c.Open(ctx, "")
	if err != nil {
		if os.Getenv("FLEETSAFE_REQUIRE_MARIADB") == "1" {
			t.Fatalf("MariaDB required: %v", err)
		}
		t.Skipf("no MariaDB: %v", err)
	}
	defer admin.Close()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	live := "rt" + hex.EncodeToString(b)
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + mariadb.QuoteIdent(live)) })
	for _, s := range []string{"CREATE DATABASE " + live, "CREATE TABLE " + live + ".a (id INT PRIMARY KEY)",
		"CREATE TABLE " + live + ".b (id INT)", "INSERT INTO " + live + ".a VALUES (1), (2)"} {
		_, err := admin.Exec(s)
		require.NoError(t, err, s)
	}
	var dump bytes.Buffer
	require.NoError(t, mariadb.Dump(ctx, c, live, &dump))
	dir := t.TempDir()
	// The tests of verify_test.go keep their own hook for the whole
	// binary: it is chained, then put back.
	var scratch []string
	prev := testHookScratch
	testHookScratch = func(n string) {
		scratch = append(scratch, n)
		if prev != nil {
			prev(n)
		}
	}
	defer func() { testHookScratch = prev }()
	run := func(file string) CheckResult {
		return RestoreTestMySQLDump(ctx, c, CheckResult{Component: "db", Rule: "r", File: file}, live)
	}

	for _, f := range []string{writeTemp(t, dir, "d.sql", dump.Bytes()), writeTemp(t, dir, "d.sql.gz", gzipOf(dump.Bytes()))} {
		got := run(f)
		assert.Equal(t, StatusOK, got.Status, got.Detail)
		assert.Contains(t, got.Detail, "row counts match")
	}
	gz := gzipOf(dump.Bytes())
	got := run(writeTemp(t, dir, "cut.sql.gz", gz[:len(gz)*2/3]))
	assert.Equal(t, StatusFailed, got.Status, got.Detail)

	forged := strings.Replace(dump.String(), "-- Dumping data for table `a`", "DROP DATABASE `"+live+"`;\n-- Dumping data for table `a`", 1)
	got = run(writeTemp(t, dir, "forged.sql", []byte(forged)))
	assert.Equal(t, StatusFailed, got.Status)
	assert.IsType(t, &mariadb.UnsafeDumpError{}, got.Finding)
	assert.Contains(t, got.Detail, "forged.sql line ")

	_, err = admin.Exec("INSERT INTO " + live + ".a VALUES (3)")
	require.NoError(t, err)
	got = run(writeTemp(t, dir, "d2.sql", dump.Bytes()))
	assert.Equal(t, StatusWarning, got.Status, got.Detail)
	assert.Contains(t, got.Detail, "a 2 rows (live 3)")

	_, err = admin.Exec("CREATE TABLE " + live + ".c (id INT)")
	require.NoError(t, err)
	got = run(writeTemp(t, dir, "d3.sql", dump.Bytes()))
	assert.Equal(t, StatusFailed, got.Status, got.Detail)
	assert.Contains(t, got.Detail, "missing from the backup: c")

	require.Len(t, scratch, 6, "one scratch database per restore")
	for _, n := range scratch {
		found, err := mariadb.Exists(ctx, admin, n)
		require.NoError(t, err)
		assert.False(t, found, "scratch database %s dropped", n)
	}
}
