package softdelete_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// xattrTree makes an instance "inst" of n files under parent, in 50
// directories, each file carrying a user.* extended attribute (a finding
// of kind xattr), and returns the layout and the files' paths in a set.
func xattrTree(t *testing.T, parent string, n int) (*instance.Layout, map[string]bool) {
	t.Helper()
	files := make(map[string]bool, n)
	for i := range n {
		d := filepath.Join(parent, "inst", fmt.Sprintf("d%02d", i%50))
		if i < 50 {
			require.NoError(t, os.MkdirAll(d, 0o755))
		}
		p := filepath.Join(d, fmt.Sprintf("file-with-a-longer-name-%06d.txt", i))
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		require.NoError(t, err)
		_, err = unix.Write(fd, []byte("x"))
		require.NoError(t, err)
		err = unix.Fsetxattr(fd, "user.fleetsafe", []byte("1"), 0)
		unix.Close(fd)
		if errors.Is(err, unix.ENOTSUP) {
			t.Skip("no user extended attributes on", parent)
		}
		require.NoError(t, err)
		files[p] = true
	}
	l, err := instance.ParseLayout([]byte("app: many\ncomponents:\n  - name: data\n    type: dir\n    path: "+parent+"/{name}\n"), "many.yml")
	require.NoError(t, err)
	return l, files
}

// TestSoftDelete_ManyFindings is the refusal and the acceptance of
// 100,000 files each carrying an extended attribute: refused, the counts
// are exact, the message and the list bounded, nothing created; accepted,
// the archive's manifest names every loss (read back with the archive
// package), and the result lists the first archive.ListedPerKind with
// exact counts. Each finding used to be compared with every earlier one
// (about 5·10^9 comparisons here) and every loss kept in memory, in the
// manifest's head and in the result.
func TestSoftDelete_ManyFindings(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 100,000 files")
	}
	const n = 100_000
	ctx := context.Background()
	dir := t.TempDir()
	start := time.Now()
	l, files := xattrTree(t, filepath.Join(dir, "srv"), n)
	t.Logf("100,000 files with an attribute made in %v", time.Since(start).Round(time.Millisecond))
	archives := filepath.Join(dir, "archives")
	req := softdelete.Request{Name: "inst", ArchiveDir: archives, Reason: "many findings", RetentionDays: 1,
		Options: instance.Options{SkipSizes: true}}

	start = time.Now()
	_, err := softdelete.Delete(ctx, l, req)
	t.Logf("refused in %v", time.Since(start).Round(time.Millisecond))
	var fe *archive.FindingsError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, n, fe.Total)
	assert.Equal(t, []archive.FindingCount{{Component: "data", Kind: archive.LossXattr, Count: n}}, fe.Counts)
	require.Len(t, fe.Findings, archive.ListedPerKind)
	for i, f := range fe.Findings {
		assert.True(t, files[f.Path], "listed finding %s is one of the files", f.Path)
		if i > 0 {
			assert.Less(t, fe.Findings[i-1].Path, f.Path, "listed in path order, each once")
		}
	}
	msg := err.Error()
	assert.Less(t, len(msg), 8<<10, "the refusal's message is bounded")
	assert.Contains(t, msg, "100000 entries cannot be archived whole")
	assert.Contains(t, msg, "100000 xattr in data")
	assert.Contains(t, msg, fmt.Sprintf("; and %d more", n-archive.ListedInMessage))
	assert.Contains(t, fe.Hint(), "accept_losses: [xattr]")
	_, err = os.Stat(archives)
	assert.True(t, os.IsNotExist(err), "refused: no archive directory created")

	req.AcceptLosses = []string{archive.LossXattr}
	start = time.Now()
	res, err := softdelete.Delete(ctx, l, req)
	t.Logf("accepted and deleted in %v", time.Since(start).Round(time.Millisecond))
	require.NoError(t, err)
	assert.Equal(t, n, res.LossesTotal)
	assert.Equal(t, []archive.FindingCount{{Component: "data", Kind: archive.LossXattr, Count: n}}, res.LossCounts)
	assert.Len(t, res.Losses, archive.ListedPerKind, "the result's list is bounded")

	require.True(t, res.Archive.Verified, "the deletion read its archive back")
	start = time.Now()
	m := archiveManifest(t, res.Archive.Path)
	t.Logf("manifest read back in %v", time.Since(start).Round(time.Millisecond))
	require.Len(t, m.Losses, n, "the manifest names every loss")
	seen := make(map[string]bool, n)
	for i, f := range m.Losses {
		require.True(t, files[f.Path], "loss %s is one of the files", f.Path)
		require.False(t, seen[f.Path], "loss %s named once", f.Path)
		require.Equal(t, archive.LossXattr, f.Kind)
		require.Equal(t, "data", f.Component)
		if i > 0 {
			require.Less(t, m.Losses[i-1].Path, f.Path, "in path order")
		}
		seen[f.Path] = true
	}
	assert.Equal(t, []string{archive.LossXattr}, m.AcceptLosses)
}

// archiveManifest reads manifest.json, the first entry of the archive at
// path, with the archive package's decoder (VerifyArchive would hash every
// file once more; the deletion already read its archive back).
func archiveManifest(t *testing.T, path string) *archive.Manifest {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := zstd.NewReader(f)
	require.NoError(t, err)
	defer zr.Close()
	tr := tar.NewReader(zr)
	h, err := tr.Next()
	require.NoError(t, err)
	require.Equal(t, "manifest.json", h.Name)
	m, err := archive.DecodeManifest(tr)
	require.NoError(t, err)
	return m
}

// TestSoftDelete_LossesMemoryFlat is TestSoftDelete_MemoryFlat with every
// file carrying an accepted loss (accept_losses: [xattr], as every file
// of a RHEL host carries an SELinux label): the heap held at every step
// and the live heap at any moment are the same within 4 MiB for 2,000
// and for 20,000 files. Losses kept in memory (about 250 bytes each, and
// again in the manifest's head and the result) held about 10 MiB more at
// 20,000.
func TestSoftDelete_LossesMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 22,000 files")
	}
	held := func(n int) (steps, live uint64) {
		dir := t.TempDir()
		l, _ := xattrTree(t, filepath.Join(dir, "srv"), n)
		stopSampling := sampleLiveHeap()
		runtime.GC()
		res, err := softdelete.Delete(context.Background(), l, softdelete.Request{Name: "inst", ArchiveDir: filepath.Join(dir, "archives"),
			Reason: "memory", RetentionDays: 1, Options: instance.Options{SkipSizes: true}, AcceptLosses: []string{archive.LossXattr},
			AfterStep: func(string) {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				steps = max(steps, ms.HeapInuse)
			}})
		live = stopSampling()
		require.NoError(t, err)
		require.True(t, res.Archive.Verified)
		require.Equal(t, n, res.LossesTotal)
		return steps, live
	}
	smallSteps, smallLive := held(2000)
	largeSteps, largeLive := held(20000)
	t.Logf("heap in use at the steps: %d KiB at 2,000 files with a loss each, %d KiB at 20,000; live heap: %d KiB, %d KiB",
		smallSteps>>10, largeSteps>>10, smallLive>>10, largeLive>>10)
	assert.LessOrEqual(t, int64(largeSteps)-int64(smallSteps), int64(4<<20), "heap held at the steps")
	assert.LessOrEqual(t, int64(largeLive)-int64(smallLive), int64(4<<20), "live heap at any moment")
}
