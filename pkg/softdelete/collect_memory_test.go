package softdelete_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestSoftDelete_MemoryFlat bounds a soft delete's memory in the file
// count (issue 12): the heap held at every step (after a collection) and
// the live heap the collector found at any moment (runtime/metrics,
// sampled every millisecond) are the same within 4 MiB for 6,000 and for
// 20,000 files. Records kept in memory (about 450 bytes a file) would hold
// about 6 MiB more at 20,000. Both archives are large enough that their
// read-back overlaps their writing (the decoder's windows live beside the
// encoder's, about 4 MiB, which a run of 2,000 files, written before its
// read-back gets its first block, does not hold).
func TestSoftDelete_MemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 22,000 files")
	}
	held := func(n int) (steps, live uint64) {
		dir := t.TempDir()
		parent := filepath.Join(dir, "srv")
		for i := range n {
			d := filepath.Join(parent, "inst", fmt.Sprintf("d%02d", i%50))
			if i < 50 {
				require.NoError(t, os.MkdirAll(d, 0o755))
			}
			require.NoError(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("file-with-a-longer-name-%06d.txt", i)), []byte("x"), 0o644))
		}
		l, err := instance.ParseLayout([]byte("app: mem\ncomponents:\n  - name: data\n    type: dir\n    path: "+parent+"/{name}\n"), "mem.yml")
		require.NoError(t, err)

		stopSampling := sampleLiveHeap()
		var seen []string
		runtime.GC()
		res, err := softdelete.Delete(context.Background(), l, softdelete.Request{Name: "inst", ArchiveDir: filepath.Join(dir, "archives"),
			Reason: "memory", RetentionDays: 1, Options: instance.Options{SkipSizes: true},
			AfterStep: func(step string) {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				steps = max(steps, ms.HeapInuse)
				seen = append(seen, step)
			}})
		live = stopSampling()
		require.NoError(t, err)
		require.True(t, res.Archive.Verified)
		require.Equal(t, n+51, res.Archive.Files)
		require.Contains(t, seen, "quarantined", "every step ran")
		return steps, live
	}
	smallSteps, smallLive := held(6000)
	largeSteps, largeLive := held(20000)
	t.Logf("heap in use at the steps: %d KiB at 6,000 files, %d KiB at 20,000; live heap: %d KiB, %d KiB",
		smallSteps>>10, largeSteps>>10, smallLive>>10, largeLive>>10)
	assert.LessOrEqual(t, int64(largeSteps)-int64(smallSteps), int64(4<<20), "heap held at the steps")
	assert.LessOrEqual(t, int64(largeLive)-int64(smallLive), int64(4<<20), "live heap at any moment")
}
