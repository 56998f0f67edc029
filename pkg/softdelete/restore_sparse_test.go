package softdelete_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestRestore_SparseFileStaysSparse: a 64 MiB file holding 8 KiB of data
// (a VM image, a preallocated database file) uses a few blocks on disk.
// Restored from the archive it came back using its full size: on a host
// with many such files, a restore fills the disk. Measured with st_blocks
// (what du reports), before the deletion and after the restore; the
// content is identical.
func TestRestore_SparseFileStaysSparse(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	p := filepath.Join(f.Path("data", "acme"), "disk.img")
	const size = 64 << 20
	file, err := os.Create(p)
	require.NoError(t, err)
	_, err = file.WriteAt([]byte("head"), 0)
	require.NoError(t, err)
	_, err = file.WriteAt(append(make([]byte, 4092), []byte("middle")...), 32<<20)
	require.NoError(t, err)
	require.NoError(t, file.Truncate(size))
	require.NoError(t, file.Close())
	used := func() int64 {
		var st syscall.Stat_t
		require.NoError(t, syscall.Stat(p, &st))
		return st.Blocks * 512
	}
	before := used()
	if before > 1<<20 {
		t.Skipf("the test filesystem does not keep files sparse (%d bytes used)", before)
	}
	want := f.Snapshot(t, "acme")

	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	dropQuarantine(t, f, res)
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Source: softdelete.SourceArchive, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, want, f.Snapshot(t, "acme"), "content, size, modes and mtimes as they were")
	after := used()
	assert.LessOrEqual(t, after, before+64<<10, "a %d-byte file using %d bytes before the deletion uses %d after the restore", size, before, after)
}
