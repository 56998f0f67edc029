package archive

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// The findings and the accepted losses of a walk are kept like its records
// (collect_spool.go): not one struct per entry in memory, but in a log
// that spills into an unlinked file once it outgrows findingRunMax. Each
// (path, kind) is kept once, with the component and words of its first
// occurrence (set semantics, as the walk's record always promised).
//
// Recording no longer compares a finding with every earlier one: it is
// appended to the current run (after a cheap check against the previous
// finding's path, which drops the repeats of one entry, e.g. an ACL and a
// default ACL, or several user.* attributes); a full run is sorted by
// (path, kind, arrival) and written out. finish merges the runs (a k-way
// merge, one 4 KiB buffer per run), keeps the first of each (path, kind),
// counts them per component and kind, keeps the first ListedPerKind of
// each for the refusal and the result, and writes the merged list once
// more as a single run that each later read streams. Time is n·log of a
// run's length to sort plus n·log of the number of runs to merge; memory
// is the current run, the counts, the first few of each kind, and 4 KiB a
// run while merging (200,000 losses make about 30 runs: 120 KiB). On
// disk, the log takes about twice the encoded findings (the runs and the
// merged list: about 60 MB for 200,000 losses), next to the records'
// spool, and goes with the collector (unlinked file).
//
// The order promised, in the refusal, the result and the manifest's
// losses, is path order (byte-wise), then kind. Archives of earlier
// releases listed losses in walk order; readers never relied on it.

// ListedPerKind is how many findings of each kind in each component a
// refusal (FindingsError.Findings) and a result (losses) list; every one
// is counted, and every loss is in the archive's manifest.
const ListedPerKind = 20

// findingRunMax is how many bytes of findings the current run holds in
// memory before it is sorted and written out (about 5,000 findings).
var findingRunMax = 1 << 20

// FindingCount counts the findings (or losses) of one kind in one
// component.
type FindingCount struct {
	Component string `json:"component"`
	Kind      string `json:"kind"`
	Count     int    `json:"count"`
}

// seqFinding is a finding and its place in arrival order.
type seqFinding struct {
	Finding
	seq uint64
}

func findingCmp(a, b *seqFinding) int {
	if c := cmp.Compare(a.Path, b.Path); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// span is a sorted run of encoded findings in the log's file.
type span struct{ off, size int64 }

// findingLog keeps one class of findings: the refused ones, or the
// accepted losses.
type findingLog struct {
	// create makes the unlinked file the log spills into.
	create func() (*os.File, error)
	run    []seqFinding
	bytes  int
	f      *os.File
	w      *bufio.Writer
	size   int64
	runs   []span
	seq    uint64
	// last is the previous finding's path and the kinds it had: a repeat
	// there is dropped at once.
	last      string
	lastKinds []string
	// err is the first failure to spill.
	err error
	// What finish found: every (path, kind) once, counted.
	done   bool
	total  int
	counts []FindingCount
	listed []Finding
}

// add records one finding. A failure to spill is kept and returned by
// finish (the collector's Err, before anything moves).
func (l *findingLog) add(f Finding) {
	if l.err == nil {
		l.err = l.append(f)
	}
}

func (l *findingLog) append(f Finding) error {
	if f.Path == l.last && l.seq > 0 {
		if slices.Contains(l.lastKinds, f.Kind) {
			return nil
		}
	} else {
		l.last, l.lastKinds = f.Path, l.lastKinds[:0]
	}
	l.lastKinds = append(l.lastKinds, f.Kind)
	l.done = false
	l.run = append(l.run, seqFinding{Finding: f, seq: l.seq})
	l.seq++
	l.bytes += len(f.Component) + len(f.Path) + len(f.Kind) + len(f.What) + 96
	if l.bytes > findingRunMax {
		return l.spill()
	}
	return nil
}

// spill sorts the current run and writes it out.
func (l *findingLog) spill() error {
	if len(l.run) == 0 {
		return nil
	}
	if l.f == nil {
		if l.create == nil {
			return nil // kept in memory
		}
		f, err := l.create()
		if err != nil {
			return fmt.Errorf("spool the findings: %w", err)
		}
		l.f, l.w = f, bufio.NewWriterSize(io.NewOffsetWriter(f, 0), 64<<10)
	}
	slices.SortFunc(l.run, func(a, b seqFinding) int { return findingCmp(&a, &b) })
	start := l.size
	var b []byte
	for i := range l.run {
		b = encodeFinding(b[:0], &l.run[i])
		if _, err := l.w.Write(b); err != nil {
			return l.failed(err)
		}
		l.size += int64(len(b))
	}
	if err := l.w.Flush(); err != nil {
		return l.failed(err)
	}
	l.runs = append(l.runs, span{start, l.size - start})
	clear(l.run)
	l.run, l.bytes = l.run[:0], 0
	return nil
}

func (l *findingLog) failed(err error) error {
	return fmt.Errorf("spool the findings in %s: %w", l.f.Name(), err)
}

func (l *findingLog) close() {
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.w, l.run, l.runs = nil, nil, nil, nil
}

func encodeFinding(b []byte, f *seqFinding) []byte {
	b = binary.AppendUvarint(b, f.seq)
	for _, s := range []string{f.Component, f.Path, f.Kind, f.What} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

var errFindingRecord = errors.New("spooled finding damaged")

func decodeFinding(r *bufio.Reader, f *seqFinding) error {
	seq, err := binary.ReadUvarint(r)
	if err != nil {
		return err // io.EOF at the end of a run
	}
	f.seq = seq
	for _, s := range []*string{&f.Component, &f.Path, &f.Kind, &f.What} {
		n, err := binary.ReadUvarint(r)
		if err != nil || n > 1<<20 {
			return errFindingRecord
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return errFindingRecord
		}
		*s = string(b)
	}
	return nil
}

// runReader reads one run in order.
type runReader struct {
	r   *bufio.Reader
	cur seqFinding
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return findingCmp(&h[i].cur, &h[j].cur) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merged calls fn with every finding of the runs and of the current run
// in (path, kind, arrival) order, repeats included.
func (l *findingLog) merged(fn func(*seqFinding) error) error {
	if l.f == nil {
		slices.SortFunc(l.run, func(a, b seqFinding) int { return findingCmp(&a, &b) })
		for i := range l.run {
			if err := fn(&l.run[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := l.spill(); err != nil {
		return err
	}
	h := make(runHeap, 0, len(l.runs))
	for _, s := range l.runs {
		rr := &runReader{r: bufio.NewReaderSize(io.NewSectionReader(l.f, s.off, s.size), 4<<10)}
		switch err := decodeFinding(rr.r, &rr.cur); err {
		case nil:
			h = append(h, rr)
		case io.EOF:
		default:
			return fmt.Errorf("read back the findings: %w", err)
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		rr := h[0]
		cur := rr.cur
		if err := fn(&cur); err != nil {
			return err
		}
		switch err := decodeFinding(rr.r, &rr.cur); err {
		case nil:
			heap.Fix(&h, 0)
		case io.EOF:
			heap.Pop(&h)
		default:
			return fmt.Errorf("read back the findings: %w", err)
		}
	}
	return nil
}

// finish keeps the first of each (path, kind), counts them, and keeps
// the merged list as the log's only run.
func (l *findingLog) finish() error {
	if l.err != nil {
		return l.err
	}
	if l.done {
		return nil
	}
	l.total, l.counts, l.listed = 0, nil, nil
	index := map[[2]string]int{}
	var prev *seqFinding
	var kept []seqFinding // the merged list, while it stays in memory
	var w *bufio.Writer
	var start, written int64
	if l.f != nil {
		if err := l.spill(); err != nil {
			return err
		}
		start = l.size
		w = bufio.NewWriterSize(io.NewOffsetWriter(l.f, start), 64<<10)
	}
	var b []byte
	err := l.merged(func(f *seqFinding) error {
		if prev != nil && prev.Path == f.Path && prev.Kind == f.Kind {
			return nil
		}
		p := *f
		p.seq = uint64(l.total) // the merged order is the order from now on
		prev = &p
		l.total++
		k := [2]string{f.Component, f.Kind}
		i, ok := index[k]
		if !ok {
			i = len(l.counts)
			index[k] = i
			l.counts = append(l.counts, FindingCount{Component: f.Component, Kind: f.Kind})
		}
		l.counts[i].Count++
		if l.counts[i].Count <= ListedPerKind {
			l.listed = append(l.listed, f.Finding)
		}
		if w == nil {
			kept = append(kept, p)
			return nil
		}
		b = encodeFinding(b[:0], &p)
		n, err := w.Write(b)
		written += int64(n)
		return err
	})
	if err != nil {
		return err
	}
	slices.SortFunc(l.counts, func(a, b FindingCount) int {
		return cmp.Or(cmp.Compare(a.Component, b.Component), cmp.Compare(a.Kind, b.Kind))
	})
	if w != nil {
		if err := w.Flush(); err != nil {
			return l.failed(err)
		}
		// The merged list replaces the runs; the file grows by it once
		// per finish (once a walk; again only if a finding came later).
		l.size = start + written
		l.runs = []span{{start, written}}
		l.w.Reset(io.NewOffsetWriter(l.f, l.size))
		l.run = nil // its capacity is not kept for the rest of the deletion
	} else {
		l.run = kept
	}
	l.seq = uint64(l.total)
	l.done = true
	return nil
}

// each calls fn with every finding once, in path order then kind, after
// finish.
func (l *findingLog) each(fn func(Finding) error) error {
	if err := l.finish(); err != nil {
		return err
	}
	return l.merged(func(f *seqFinding) error { return fn(f.Finding) })
}
