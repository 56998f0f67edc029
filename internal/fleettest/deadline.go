package fleettest

import (
	"runtime"
	"testing"
	"time"
)

// Deadline runs fn and fails the test with every goroutine's stack if it
// has not returned after d: fuzz targets use it so that an input that
// hangs is reported (and kept as a crasher) instead of stalling a worker.
func Deadline(tb testing.TB, d time.Duration, fn func()) {
	tb.Helper()
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
