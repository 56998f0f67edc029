package softdelete

import (
	"math"
	"runtime/debug"
	"testing"
)

// While an archive is written and read back, the soft memory limit is
// what is live plus the headroom, and the previous one comes back after;
// a limit already set (GOMEMLIMIT) is left alone.
func TestLimitMemory(t *testing.T) {
	prev := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	restore := limitMemory()
	got := debug.SetMemoryLimit(-1)
	if got < memoryHeadroom || got > memoryHeadroom+1<<30 {
		t.Fatalf("limit while archiving: %d, want live heap + %d", got, memoryHeadroom)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("limit after: %d, want none (%d)", got, int64(math.MaxInt64))
	}
	debug.SetMemoryLimit(300 << 20)
	restore = limitMemory()
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Fatalf("a limit set by the operator was changed to %d", got)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Fatalf("a limit set by the operator became %d", got)
	}
}
