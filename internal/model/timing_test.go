package model

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"pgregory.net/rapid"
)

// timings adds up the wall-clock time of each kind of step (actions of the
// machines, fleet setup, database creation and removal), so that a slow run
// says where its time went: FLEETSAFE_MODEL_TIMING=1 (make soak sets it)
// prints the table when the package's tests end.
var timings = struct {
	sync.Mutex
	m map[string]*timing
}{m: map[string]*timing{}}

type timing struct {
	n          int
	total, max time.Duration
}

// timed records the time since start under kind; use it as
// `defer timed("kind", time.Now())`.
func timed(kind string, start time.Time) {
	d := time.Since(start)
	timings.Lock()
	defer timings.Unlock()
	tm := timings.m[kind]
	if tm == nil {
		tm = &timing{}
		timings.m[kind] = tm
	}
	tm.n++
	tm.total += d
	tm.max = max(tm.max, d)
}

// timingReport is the table of timings, the slowest kind first.
func timingReport() string {
	timings.Lock()
	defer timings.Unlock()
	kinds := make([]string, 0, len(timings.m))
	for k := range timings.m {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return timings.m[kinds[i]].total > timings.m[kinds[j]].total })
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %6s %10s %10s %10s\n", "step", "count", "total", "mean", "max")
	for _, k := range kinds {
		tm := timings.m[k]
		fmt.Fprintf(&b, "%-28s %6d %10s %10s %10s\n", k, tm.n, tm.total.Round(time.Millisecond),
			(tm.total / time.Duration(tm.n)).Round(time.Millisecond), tm.max.Round(time.Millisecond))
	}
	return b.String()
}

func printTimings() {
	if os.Getenv("FLEETSAFE_MODEL_TIMING") == "" {
		return
	}
	fmt.Fprint(os.Stderr, "internal/model: time per step kind\n"+timingReport())
}

// timedActions wraps each action of a machine so that its time is
// recorded under "step <name>" ("step check" for the invariant check).
func timedActions(actions map[string]func(*rapid.T)) map[string]func(*rapid.T) {
	out := make(map[string]func(*rapid.T), len(actions))
	for name, act := range actions {
		kind := "step " + name
		if name == "" {
			kind = "step check"
		}
		out[name] = func(t *rapid.T) {
			defer timed(kind, time.Now())
			act(t)
		}
	}
	return out
}
