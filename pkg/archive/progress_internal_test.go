package archive

import (
	"testing"
	"time"
)

// TestMeter_BoundedRate: however often bytes flow, reports come at most
// every ProgressInterval, plus the first and the last.
func TestMeter_BoundedRate(t *testing.T) {
	var got []Progress
	const total = 1 << 30
	m := newMeter(func(p Progress) { got = append(got, p) }, PhaseVerify, total, 0)
	start := time.Now()
	var sent int64
	for time.Since(start) < 350*time.Millisecond {
		m.add(1, 0)
		sent++
	}
	m.add(total-sent, 0)
	elapsed := time.Since(start)
	max := int(elapsed/ProgressInterval) + 2
	if len(got) > max || len(got) < 3 {
		t.Fatalf("%d reports in %v for %d additions, want 3 to %d", len(got), elapsed, sent, max)
	}
	if last := got[len(got)-1]; last.BytesDone != total || last.BytesTotal != total {
		t.Fatalf("last report %+v", last)
	}
	n := len(got)
	m.add(5, 0)
	if len(got) != n {
		t.Fatalf("a report after the last: %+v", got[n:])
	}
}
