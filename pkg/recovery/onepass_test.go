package recovery_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// shell runs a shell script with the fleet's PostgreSQL environment.
func shell(t *testing.T, x *fixture, script string, args ...string) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", script}, args...)...)
	cmd.Env = x.f.PG.Env()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
}

// TestRestore_TarFailingItsChecksumAfterExtractionFallsBack attacks the
// one-read restore of a tar backup: the newest data backup is a whole,
// well-formed tar.zst (with a file the older one lacks), so it is
// extracted into staging to its very end, and only then does its sha256
// prove it is not the file its sidecar vouches for. Its staging must be
// discarded (nothing of it in place, no staging left) and the previous
// good backup restored instead, the refusal saying why.
func TestRestore_TarFailingItsChecksumAfterExtractionFallsBack(t *testing.T) {
	x := newFixture(t)
	l := relayout(t, x.f, "data-*.tar.zst\n    format: tar_zst", "data-*.tar.zst\n    format: tar_zst\n    checksum: sha256_sidecar")
	data := x.f.Path("data", "acme")
	dir := x.f.BackupDir("acme")
	for _, b := range []string{x.prev["data"], x.latest["data"]} {
		fi, err := os.Stat(b)
		require.NoError(t, err)
		shell(t, x, `cd "$(dirname "$0")" && sha256sum "$(basename "$0")" > "$(basename "$0").sha256"`, b)
		require.NoError(t, os.Chtimes(b+".sha256", fi.ModTime(), fi.ModTime()))
	}
	require.NoError(t, os.WriteFile(filepath.Join(data, "only-in-newest"), []byte("newest"), 0o640))
	when := time.Now().Add(-10 * time.Minute)
	newest := filepath.Join(dir, "data-"+when.UTC().Format("20060102T150405")+".tar.zst")
	shell(t, x, `tar -C "$(dirname "$0")" -cf - "$(basename "$0")" | zstd -q -o "$1" && cd "$(dirname "$1")" && echo "$(printf '' | sha256sum | cut -d' ' -f1)  $(basename "$1")" > "$1.sha256"`, data, newest)
	require.NoError(t, os.Chtimes(newest, when, when))
	x.destroy(t, "data")

	res, err := recovery.Restore(context.Background(), l, x.req())
	require.NoError(t, err)
	cs := byComponent(res)
	require.Equal(t, recovery.StatusRestored, cs["data"].Status)
	assert.Equal(t, x.latest["data"], cs["data"].Backup.Path, "the previous good backup")
	require.Len(t, cs["data"].Refused, 1)
	assert.Equal(t, newest, cs["data"].Refused[0].Path)
	assert.Contains(t, cs["data"].Refused[0].Reason, "checksum")
	assert.Equal(t, tarTree(t, x.latest["data"], "data"), fleettest.Tree(t, data), "the previous backup, byte for byte, nothing of the newest")
	assert.NoFileExists(t, filepath.Join(data, "only-in-newest"))
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(data), softdelete.StagingPrefix+"*"))
	assert.Empty(t, left, "no staging directory left")
}

// TestRestore_DumpCorruptPastWhatTheCheckInflatesFallsBack attacks the
// concurrent check of a pg_custom dump: one byte flipped deep in a large
// data block (its sidecar matching the damaged file, its framing whole),
// past the start of the block the check inflates while pg_restore loads
// it. pg_restore meets the damage; the dump must then be judged whole,
// refused for its format (not called a fault of the place), its staging
// database dropped, and the previous good dump restored.
func TestRestore_DumpCorruptPastWhatTheCheckInflatesFallsBack(t *testing.T) {
	ctx := context.Background()
	x := newFixture(t)
	db, err := x.f.PG.Open(ctx, x.f.Database("acme"))
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `CREATE TABLE public.zz_bulk AS SELECT g, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 60000) g`)
	db.Close()
	require.NoError(t, err)
	when := time.Now().Add(-10 * time.Minute)
	bad := filepath.Join(x.f.BackupDir("acme"), "db-"+when.UTC().Format("20060102T150405")+".dump")
	shell(t, x, `pg_dump --format=custom --file="$1" --dbname="$0"`, x.f.Database("acme"), bad)
	raw, err := os.ReadFile(bad)
	require.NoError(t, err)
	require.Greater(t, len(raw), 1<<20, "a data block larger than what the check inflates")
	raw[len(raw)*3/4] ^= 0x5a
	require.NoError(t, os.WriteFile(bad, raw, 0o600))
	shell(t, x, `cd "$(dirname "$0")" && sha256sum "$(basename "$0")" > "$(basename "$0").sha256"`, bad)
	require.NoError(t, os.Chtimes(bad, when, when))
	x.destroy(t, "database")
	dbsBefore, _ := stagingLeft(t, x)

	res, err := recovery.Restore(ctx, x.f.Layout, x.req())
	require.NoError(t, err)
	cs := byComponent(res)
	require.Equal(t, recovery.StatusRestored, cs["database"].Status, cs["database"].Reason)
	assert.Equal(t, x.latest["database"], cs["database"].Backup.Path, "the previous good dump")
	require.Len(t, cs["database"].Refused, 1)
	assert.Equal(t, bad, cs["database"].Refused[0].Path)
	assert.Contains(t, cs["database"].Refused[0].Reason, "format", "refused for what is wrong with it")
	assert.Equal(t, x.want.Rows, x.f.Snapshot(t, "acme").Rows, "the previous dump's rows, nothing of the damaged one")
	dbsAfter, _ := stagingLeft(t, x)
	assert.Equal(t, dbsBefore, dbsAfter, fmt.Sprintf("no staging database left (%d before, %d after)", dbsBefore, dbsAfter))
}
