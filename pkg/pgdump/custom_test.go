package pgdump_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// realDump dumps a generated database with the real pg_dump.
func realDump(t *testing.T, extra ...string) []byte {
	t.Helper()
	f := fleettest.New(t, true, "acme")
	file := filepath.Join(t.TempDir(), "acme.dump")
	args := append([]string{"--format=custom", "--file=" + file, "--dbname=" + f.Database("acme")}, extra...)
	cmd := exec.Command("pg_dump", args...)
	cmd.Env = f.PG.Env()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	return data
}

func TestVerify_RealDumps(t *testing.T) {
	for name, extra := range map[string][]string{"gzip": nil, "uncompressed": {"--compress=0"}} {
		t.Run(name, func(t *testing.T) {
			data := realDump(t, extra...)
			sum, err := pgdump.Verify(bytes.NewReader(data))
			require.NoError(t, err)
			assert.Equal(t, 2, sum.DataBlocks, "two tables")
			assert.Greater(t, sum.DataBytes, int64(1000))
			assert.Contains(t, sum.DumpVersion, "15.")
		})
	}
}

func TestVerify_PipedDumpWithoutOffsets(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	cmd := exec.Command("pg_dump", "--format=custom", "--dbname="+f.Database("acme"))
	cmd.Env = f.PG.Env()
	data, err := cmd.Output()
	require.NoError(t, err)
	_, err = pgdump.Verify(bytes.NewReader(data))
	require.NoError(t, err)
	_, err = pgdump.Verify(bytes.NewReader(data[:len(data)-40]))
	assert.Error(t, err)
}

func TestVerify_TruncatedAnywhereIsCaught(t *testing.T) {
	data := realDump(t)
	for _, cut := range []int{3, 20, 200, len(data) / 3, len(data) / 2, len(data) - 100, len(data) - 1} {
		_, err := pgdump.Verify(bytes.NewReader(data[:cut]))
		var se *pgdump.StructureError
		require.True(t, errors.As(err, &se), "cut at %d/%d: %v", cut, len(data), err)
	}
}

// pg_restore --list passes a dump cut inside its data; Verify does not.
func TestVerify_CatchesWhatPgRestoreListMisses(t *testing.T) {
	data := realDump(t)
	cut := filepath.Join(t.TempDir(), "cut.dump")
	require.NoError(t, os.WriteFile(cut, data[:len(data)-200], 0o600))
	require.NoError(t, exec.Command("pg_restore", "--list", cut).Run(), "pg_restore --list accepts it")
	_, err := pgdump.Verify(bytes.NewReader(data[:len(data)-200]))
	assert.Error(t, err)
}

func TestVerify_CorruptedDataBlock(t *testing.T) {
	data := realDump(t)
	bad := bytes.Clone(data)
	// Flip bytes in the middle of the compressed table data.
	for i := len(bad) * 2 / 3; i < len(bad)*2/3+16; i++ {
		bad[i] ^= 0x5a
	}
	_, err := pgdump.Verify(bytes.NewReader(bad))
	require.Error(t, err)
}

func TestVerify_NotADump(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("PGDM"), []byte("-- PostgreSQL database dump\n"), bytes.Repeat([]byte{0}, 100)} {
		_, err := pgdump.Verify(bytes.NewReader(in))
		assert.Error(t, err)
	}
}

func TestDumpAndRestore(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "d.dump")
	require.NoError(t, pgdump.Dump(ctx, f.PG, f.Database("acme"), file))
	require.NoError(t, f.CreateDatabaseEmpty(ctx, "copy"))
	require.NoError(t, pgdump.Restore(ctx, f.PG, f.Database("copy"), file))
	db, err := f.PG.Open(ctx, f.Database("copy"))
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM public.content").Scan(&n))
	assert.Equal(t, 100, n)

	err = pgdump.Dump(ctx, f.PG, f.Database("nonexistent"), file)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not exist")
}

// TestReadHeader: the database named in a real dump's header, read without
// the rest of the file; a schema-only dump has no data bytes.
func TestReadHeader(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	file := filepath.Join(t.TempDir(), "acme.dump")
	cmd := exec.Command("pg_dump", "--format=custom", "--schema-only", "--file="+file, "--dbname="+f.Database("acme"))
	cmd.Env = f.PG.Env()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	sum, err := pgdump.ReadHeader(bytes.NewReader(data[:200]))
	require.NoError(t, err, "the header fits in the first bytes")
	assert.Equal(t, f.Database("acme"), sum.Database)
	full, err := pgdump.Verify(bytes.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, f.Database("acme"), full.Database)
	assert.Zero(t, full.DataBytes, "a schema-only dump holds no table data")
	_, err = pgdump.ReadHeader(bytes.NewReader(data[:20]))
	var se *pgdump.StructureError
	assert.ErrorAs(t, err, &se)
	_, err = pgdump.ReadHeader(bytes.NewReader([]byte("-- PostgreSQL database dump\n")))
	assert.ErrorAs(t, err, &se)
}
