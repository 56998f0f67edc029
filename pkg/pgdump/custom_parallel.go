package pgdump

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump/inflate"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// The parallel checker's memory: at most segBuffers buffers of segSize
// bytes of compressed data are in flight, whatever the size of the dump or
// of one of its data blocks.
// (a variable so that tests can make small streams take the segmented path).
var segSize = 1 << 20

func segBuffers(workers int) int { return 2*workers + 2 }

// Verify reads a custom-format dump from r to its end: header, table of
// contents, then every data block, decompressing each so that a corrupted
// block is caught. It returns a *StructureError when the dump is truncated,
// corrupted or lacks data the table of contents promises. pg_restore
// --list alone passes such dumps.
//
// One goroutine checks the structure (as the sequential reader does) and
// hands each compressed data stream, one per table or large object, to
// GOMAXPROCS inflaters. A file (an io.ReaderAt that can seek, such as an
// *os.File of a regular file) is read by position: the walk skips the
// chunks' payloads and each inflater reads its own stream's range of the
// file, so that as many streams inflate at once as there are inflaters
// (custom_at.go); the file is left positioned at its end. Any other source
// is read once, in order, its streams passed to the inflaters through a
// bounded pool of buffers. Memory is bounded either way, whatever the size
// of the dump or of one stream. The error returned is the one the
// sequential reader meets first in file order.
func Verify(src io.Reader) (*Summary, error) {
	return verifyParallel(src, runtime.GOMAXPROCS(0), 0)
}

// framingInflate is how much of each data stream VerifyFraming inflates
// (a variable so that tests can make small streams go past it).
var framingInflate int64 = 64 << 10

// VerifyFraming is Verify for a dump that pg_restore loads at the same
// time: the same walk of the header, the table of contents and every
// chunk of every data block (a truncation, a missing block, a broken
// chunk are found as Verify finds them), but each data stream is inflated
// only up to its first 64 KiB of data (a gzip stream's checker decodes up
// to 256 KiB before it hands its output over and stops; what it finds
// past the first 64 KiB is not a finding); pg_restore inflates all of it
// and fails on a corrupted block, which Verify then names. DataBytes
// counts what was inflated: more than zero exactly when Verify's is.
func VerifyFraming(src io.Reader) (*Summary, error) {
	return verifyParallel(src, runtime.GOMAXPROCS(0), framingInflate)
}

// seg is one piece of a data stream's compressed bytes; err ends a stream
// the reader could not read to its terminator.
type seg struct {
	b   []byte
	err error
}

// stream is one data stream handed to an inflater: whole when it fit in one
// buffer, otherwise its segments arrive on segs.
type stream struct {
	idx   int
	start int64 // offset of the stream's first chunk header
	whole []byte
	segs  chan seg
	// byPos, end and cut, for a dump read by position: the stream is the
	// chunks in [start, end); cut is the walk's error when it could not
	// read the stream to its terminator (end is then where it stopped).
	byPos bool
	end   int64
	cut   error
	// entry names the table of contents entry in an inflate error, as the
	// sequential reader does.
	entry *tocEntry
}

type result struct {
	n   int64
	err error
	// rows is the number of lines of a TABLE DATA stream inflated whole
	// (COPY's text format ends every row with a newline and escapes the
	// newlines inside values); -1 when not counted.
	rows int64
	// entry is the stream's table of contents entry (nil for an empty
	// result).
	entry *tocEntry
}

type pool struct {
	free chan []byte
}

// get waits for a free buffer. Buffers start empty and grow with the data
// actually read (up to segSize), so a small or hostile file costs little.
func (p *pool) get() []byte  { return (<-p.free)[:0] }
func (p *pool) put(b []byte) { p.free <- b }

func newPool(n int) *pool {
	p := &pool{free: make(chan []byte, n)}
	for range n {
		p.free <- nil
	}
	return p
}

// verifyParallel is Verify with workers inflaters, each stream inflated up
// to limit bytes of data (0: all of it).
func verifyParallel(src io.Reader, workers int, limit int64) (*Summary, error) {
	workers = max(workers, 1)
	at := readerAtOf(src)
	var r *reader
	if at != nil {
		r = at.reader()
	} else {
		r = &reader{r: bufio.NewReaderSize(src, 256<<10)}
	}
	sum, comp, entries, err := r.headerAndTOC()
	if err != nil {
		return nil, err
	}
	nbuf := segBuffers(workers)
	bufs := newPool(nbuf)
	if at != nil {
		bufs = newPool(0) // streams are read by the inflaters themselves
	}
	jobs := make(chan *stream, nbuf)
	var (
		mu      sync.Mutex
		results []result
		// failedAt is the lowest stream index whose inflation failed, or
		// MaxInt64; the reader stops early past it.
		failedAt atomic.Int64
	)
	failedAt.Store(1<<63 - 1)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inf := &inflater{comp: comp, limit: limit, at: at, intSize: r.intSize}
			for s := range jobs {
				var res result
				if int64(s.idx) > failedAt.Load() {
					s.release(bufs) // the answer is already known
				} else {
					res = inf.run(s, bufs)
				}
				if res.err != nil {
					for {
						cur := failedAt.Load()
						if int64(s.idx) >= cur || failedAt.CompareAndSwap(cur, int64(s.idx)) {
							break
						}
					}
				}
				mu.Lock()
				results[s.idx] = res
				mu.Unlock()
			}
		}()
	}

	p := &producer{r: r, comp: comp, bufs: bufs, jobs: jobs, failedAt: &failedAt,
		add: func() int {
			mu.Lock()
			defer mu.Unlock()
			results = append(results, result{})
			return len(results) - 1
		}}
	perr := p.blocks(entries, sum)
	close(jobs)
	wg.Wait()

	// The first error in file order: an inflate error of an earlier stream,
	// or of the stream the reader was cut in when found before the cut,
	// comes before the reader's own error, which carries the index of the
	// stream it was reading (or of the next one).
	for i, res := range results {
		if perr != nil && i > p.errAt {
			break
		}
		if res.err != nil {
			return nil, res.err
		}
		sum.DataBytes += res.n
		if res.rows >= 0 && res.entry != nil && limit == 0 {
			if sum.Rows == nil {
				sum.Rows = map[Table]int64{}
			}
			sum.Rows[Table{Schema: res.entry.namespace, Name: res.entry.tag}] = res.rows
		}
	}
	if perr != nil {
		return nil, perr
	}
	return sum, nil
}

// producer is the reading side: the same walk as the sequential reader,
// with each data stream's chunks copied into buffers instead of inflated.
type producer struct {
	r        *reader
	comp     string
	bufs     *pool
	jobs     chan *stream
	failedAt *atomic.Int64
	add      func() int
	next     int // index of the next stream
	errAt    int // index the reader's error belongs to
}

func (p *producer) fail(err error) error {
	p.errAt = p.next
	return err
}

func (p *producer) blocks(entries map[int64]*tocEntry, sum *Summary) error {
	r := p.r
	seen := map[int64]bool{}
	for {
		if p.failedAt.Load() < int64(p.next) {
			// An earlier stream does not inflate: that is the answer.
			return p.fail(errStopped)
		}
		start := r.pos
		typ, err := r.r.ReadByte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return p.fail(fmt.Errorf("read dump: %w", err))
		}
		r.pos++
		id, err := r.int()
		if err != nil {
			return p.fail(err)
		}
		e, ok := entries[id]
		if !ok {
			return p.fail(&StructureError{Offset: start, Msg: fmt.Sprintf("data block for unknown entry %d (corrupted)", id)})
		}
		if seen[id] {
			return p.fail(&StructureError{Offset: start, Msg: fmt.Sprintf("second data block for entry %d (corrupted)", id)})
		}
		if e.flag == offsetSet && e.offset != start {
			return p.fail(&StructureError{Offset: start, Msg: fmt.Sprintf("data block of entry %d (%s %s) found at byte %d, the table of contents says %d", id, e.desc, e.tag, start, e.offset)})
		}
		seen[id] = true
		switch typ {
		case blkData:
			err = p.oneStream(e)
		case blkBlobs:
			err = p.blobs(e)
		default:
			return p.fail(&StructureError{Offset: start, Msg: fmt.Sprintf("unknown block type %d (corrupted)", typ)})
		}
		if err != nil {
			return p.fail(fmt.Errorf("entry %d (%s %s): %w", id, e.desc, e.tag, err))
		}
		sum.DataBlocks++
	}
	if e := missingData(entries, seen); e != nil {
		p.next = 1<<31 - 1 // after every stream
		return p.fail(r.fail("truncated: no data block for entry %d (%s %s)", e.id, e.desc, e.tag))
	}
	return nil
}

// errStopped never reaches a caller: an earlier stream's error comes first.
var errStopped = errors.New("stopped after an earlier error")

func (p *producer) blobs(e *tocEntry) error {
	for {
		oid, err := p.r.int()
		if err != nil {
			return err
		}
		if oid == 0 {
			return nil
		}
		if err := p.oneStream(e); err != nil {
			return err
		}
	}
}

// oneStream hands one data stream to the inflaters.
func (p *producer) oneStream(e *tocEntry) error {
	if p.r.at != nil {
		return p.streamAt(e)
	}
	return p.stream(e)
}

// stream copies one data stream's chunk payloads, up to its zero-length
// terminator, into pool buffers and hands it to the inflaters: whole if it
// fits in one buffer, else segment by segment as the buffers fill.
func (p *producer) stream(e *tocEntry) error {
	r := p.r
	s := &stream{start: r.pos, entry: e}
	buf := p.bufs.get()
	sent := false
	send := func(b []byte, err error) {
		if !sent {
			s.segs = make(chan seg, cap(p.bufs.free)+1)
			s.idx = p.add()
			p.next = s.idx + 1
			p.jobs <- s
			sent = true
		}
		s.segs <- seg{b: b, err: err}
	}
	for {
		n, err := r.int()
		if err == nil && (n < 0 || n > maxChunk) {
			err = r.fail("implausible chunk length %d (corrupted)", n)
		}
		if err != nil {
			return p.cut(s, buf, err, send)
		}
		if n == 0 {
			break
		}
		for n > 0 {
			if len(buf) >= segSize {
				send(buf, nil)
				buf = p.bufs.get()
			}
			if len(buf) == cap(buf) {
				buf = slices.Grow(buf, min(max(2*cap(buf), 64<<10), segSize)-len(buf))
			}
			k := min(n, int64(min(cap(buf), segSize)-len(buf)))
			got, err := io.ReadFull(r.r, buf[len(buf):len(buf)+int(k)])
			r.pos += int64(got)
			buf = buf[:len(buf)+got]
			n -= int64(got)
			if err != nil {
				return p.cut(s, buf, r.eof(err), send)
			}
		}
	}
	if sent {
		send(buf, nil)
		close(s.segs)
		return nil
	}
	s.whole = buf
	s.idx = p.add()
	p.next = s.idx + 1
	p.jobs <- s
	return nil
}

// cut ends a stream the reader could not read to its terminator: what was
// read still goes to an inflater, since an inflate error before the cut is
// the first finding (as in the sequential reader); the reader's error
// carries the stream's index.
func (p *producer) cut(s *stream, buf []byte, err error, send func([]byte, error)) error {
	send(buf, err)
	close(s.segs)
	p.next = s.idx
	return err
}

// release gives back the buffers of a stream that will not be inflated.
func (s *stream) release(bufs *pool) {
	if s.byPos {
		return // no buffers
	}
	if s.segs == nil {
		bufs.put(s.whole)
		return
	}
	for sg := range s.segs {
		bufs.put(sg.b)
	}
}

// segReader reads a stream's segments in order, giving each buffer back
// once read.
type segReader struct {
	s    *stream
	bufs *pool
	cur  []byte
	keep []byte // the buffer cur points into
	err  error
	hit  bool // err was returned to the inflater
	done bool
}

func (sr *segReader) Read(p []byte) (int, error) {
	for len(sr.cur) == 0 {
		if sr.keep != nil {
			sr.bufs.put(sr.keep)
			sr.keep = nil
		}
		if sr.err != nil {
			sr.hit = true
			return 0, sr.err
		}
		if sr.done {
			return 0, io.EOF
		}
		sg, ok := <-sr.s.segs
		if !ok {
			sr.done = true
			continue
		}
		sr.cur, sr.keep, sr.err = sg.b, sg.b, sg.err
	}
	n := copy(p, sr.cur)
	sr.cur = sr.cur[n:]
	return n, nil
}

// drain gives back every buffer of the stream not read yet.
func (sr *segReader) drain() {
	if sr.keep != nil {
		sr.bufs.put(sr.keep)
		sr.keep, sr.cur = nil, nil
	}
	if !sr.done {
		for sg := range sr.s.segs {
			sr.bufs.put(sg.b)
		}
		sr.done = true
	}
}

// inflater is one worker's decompressor, reused from stream to stream.
type inflater struct {
	comp  string
	limit int64 // data bytes inflated at most (0: all)
	// lines counts the newlines of the stream being inflated, when set.
	lines *lineCounter
	// zc checks gzip (zlib) streams; klauspost, when set (by
	// TestInflateCost), makes zr, klauspost/compress's zlib reader, do it
	// instead, for comparison.
	zc        *inflate.Checker
	klauspost bool
	zr        io.ReadCloser
	zs        *zstd.Decoder
	br        *bufio.Reader
	// at, intSize and raw: a dump read by position, the size of its
	// integers (chunk headers), the buffer of the file's bytes.
	at      *atSource
	intSize int
	raw     *bufio.Reader
}

func (f *inflater) run(s *stream, bufs *pool) result {
	if s.byPos {
		return f.runAt(s)
	}
	var src io.Reader
	var sr *segReader
	if s.segs == nil {
		defer bufs.put(s.whole)
		src = bytes.NewReader(s.whole)
	} else {
		sr = &segReader{s: s, bufs: bufs}
		defer sr.drain()
		if f.br == nil {
			f.br = bufio.NewReaderSize(sr, 256<<10)
		} else {
			f.br.Reset(sr)
		}
		src = f.br
	}
	f.countLines(s)
	res := f.count(f.inflate(src))
	if sr != nil && sr.hit && f.neededCut(res.err, sr.err) {
		// The inflater reached the cut: the reader's own error (truncation)
		// is the finding, and the reader reports it.
		return result{n: res.n, rows: -1}
	}
	return f.inflateResult(s, res)
}

// neededCut says whether an inflation that met a cut stream's end (the
// reader's error) needed the bytes past it, the reader's error being then
// the finding. The zlib checker reads ahead, and returns the source's
// error only when it needs the missing bytes (otherwise its verdict on the
// bytes before the cut stands, as the sequential reader's); the other
// decoders read only what they need.
func (f *inflater) neededCut(err, cut error) bool {
	if f.comp == "gzip" && !f.klauspost {
		return err == cut
	}
	return true
}

// countLines sets the inflater to count the lines of s, when they are rows.
func (f *inflater) countLines(s *stream) {
	f.lines = nil
	if f.limit == 0 && s.entry != nil && s.entry.desc == "TABLE DATA" && f.comp != "lz4" {
		f.lines = &lineCounter{}
	}
}

// inflateResult names the stream's entry in the result and in its error.
func (f *inflater) inflateResult(s *stream, res result) result {
	if res.err != nil {
		res.err = fmt.Errorf("entry %d (%s %s): %w", s.entry.id, s.entry.desc, s.entry.tag, &StructureError{Offset: s.start, Msg: fmt.Sprintf("data does not decompress (corrupted): %v", res.err)})
	}
	res.entry = s.entry
	return res
}

// count turns an inflation's outcome into a result: the bytes, the lines
// counted (-1 when not, or when the inflation did not reach the end), and
// an error when it did not inflate (errEnough is the limit, not an error).
func (f *inflater) count(n int64, err error) result {
	if err == errEnough {
		return result{n: n, rows: -1}
	}
	if err != nil {
		return result{n: n, rows: -1, err: err}
	}
	if f.lines == nil {
		return result{n: n, rows: -1}
	}
	return result{n: n, rows: f.lines.rows()}
}

// lineCounter counts the newlines written to it, and keeps the last
// bytes to tell pg_dump's end of COPY data from the rows.
type lineCounter struct {
	n    int64
	tail []byte
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += int64(bytes.Count(p, []byte{'\n'}))
	c.tail = append(c.tail, p[max(0, len(p)-len(copyEnd)-1):]...)
	if len(c.tail) > len(copyEnd)+1 {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-len(copyEnd)-1:]...)
	}
	return len(p), nil
}

// copyEnd is what pg_dump writes after a table's COPY rows, in every
// format: the end-of-data line and two empty lines.
const copyEnd = "\\.\n\n\n"

// rows is the number of rows: the lines, less pg_dump's end of data when
// the stream ends with it (a line of its own: a row holding "\." is
// written "\\.").
func (c *lineCounter) rows() int64 {
	t := string(c.tail)
	if c.n >= 3 && (t == copyEnd && c.n == 3 || len(t) == len(copyEnd)+1 && t[0] == '\n' && t[1:] == copyEnd) {
		return c.n - 3
	}
	return c.n
}

// errEnough ends an inflation at the inflater's limit.
var errEnough = errors.New("inflated enough")

// limited stops a copy with errEnough once n bytes went through.
type limited struct{ n int64 }

func (l *limited) Write(p []byte) (int, error) {
	if int64(len(p)) >= l.n {
		l.n = 0
		return len(p), errEnough
	}
	l.n -= int64(len(p))
	return len(p), nil
}

func (f *inflater) inflate(src io.Reader) (int64, error) {
	var dst io.Writer = io.Discard
	if f.limit > 0 {
		dst = &limited{n: f.limit}
	} else if f.lines != nil {
		dst = f.lines
	}
	copyOut := func(r io.Reader) (int64, error) {
		n, err := io.Copy(dst, r)
		if err == errEnough && n > 0 {
			return n, errEnough
		}
		return n, err
	}
	switch f.comp {
	case "gzip":
		if !f.klauspost {
			// The inflated bytes go to dst and are not kept: the checker
			// keeps only deflate's window (pkg/pgdump/inflate).
			if f.zc == nil {
				f.zc = inflate.New()
			}
			return f.zc.Check(src, dst)
		}
		var err error
		if f.zr == nil {
			f.zr, err = zlib.NewReader(src)
		} else {
			err = f.zr.(zlib.Resetter).Reset(src, nil)
		}
		if err != nil {
			f.zr = nil
			return 0, err
		}
		return copyOut(f.zr)
	case "zstd":
		var err error
		if f.zs == nil {
			f.zs, err = zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		} else {
			err = f.zs.Reset(src)
		}
		if err != nil {
			return 0, err
		}
		return copyOut(f.zs)
	default:
		// none: the data itself; lz4: walked, not decompressed.
		return copyOut(src)
	}
}
