package fleettest

import (
	"flag"
	"runtime"
	"testing"
	"time"
)

// slowFactor widens hang bounds outside fuzzing: CI runs every package
// at once on two cores, under -race.
const slowFactor = 6

// Deadline runs fn and fails the test with every goroutine's stack if it
// has not returned after d: fuzz targets use it so that an input that
// hangs is reported (and kept as a crasher) instead of stalling a worker.
// Outside fuzzing (go test running the seed corpus, or a hang test, under
// -race on a loaded machine) d is multiplied by slowFactor: a hang is for
// ever, so the wider bound loses nothing, and a slow run is no hang.
func Deadline(tb testing.TB, d time.Duration, fn func()) {
	tb.Helper()
	if f := flag.Lookup("test.fuzz"); f == nil || f.Value.String() == "" {
		d *= slowFactor
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		tb.Fatalf("no answer after %v: a hang\n%s", d, buf[:n])
	}
}
