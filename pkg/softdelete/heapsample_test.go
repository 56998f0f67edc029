package softdelete_test

import (
	"runtime/metrics"
	"sync"
	"time"
)

// sampleLiveHeap samples the live heap every millisecond until the
// function it returns is called, which returns the largest value seen.
func sampleLiveHeap() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	done := make(chan struct{})
	var live uint64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				metrics.Read(sample)
				live = max(live, sample[0].Value.Uint64())
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return live
	}
}
