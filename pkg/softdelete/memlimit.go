package softdelete

import (
	"math"
	"runtime"
	"runtime/debug"
)

// memoryHeadroom is what the archive's writing may hold above what the
// soft delete held before (the manifest, the layout): the zstd encoder's
// history and tables (a few MiB for its 2 MiB window), the store's part
// buffers (15 MiB to S3) and the pipes between the stages.
const memoryHeadroom = 48 << 20

// limitMemory sets the Go runtime's soft memory limit to what is live now
// plus memoryHeadroom while the archive is written, unless a limit is set
// already (GOMEMLIMIT): the garbage collector then runs before the heap
// doubles, as it would by default (GOGC=100), so that the peak stays near
// what is live (issue 13: 64 MiB to S3) whatever the archive's size. The
// limit grows with what is live, so that a large manifest never makes the
// collector run without end. It returns what restores the previous limit.
//
// The read-back after the commit runs without it (the read-back of a
// directory store's archive while it is written runs under it): less is
// live then (the decoder's windows), so the default pacing stays low, and
// age allocates a chunk buffer for every 64 KiB it decrypts, which near a
// limit would make the collector run every few MiB (226 collections for
// 256 MiB, measured).
func limitMemory() func() {
	prev := debug.SetMemoryLimit(-1)
	if prev != math.MaxInt64 {
		return func() {}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	debug.SetMemoryLimit(int64(ms.HeapAlloc) + memoryHeadroom)
	return func() { debug.SetMemoryLimit(prev) }
}
