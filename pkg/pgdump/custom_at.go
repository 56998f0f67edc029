package pgdump

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

// A dump read by position: when Verify's source is a file (an
// io.ReaderAt that can seek: *os.File on a regular file, *bytes.Reader),
// the reading goroutine walks only the chunk headers, skipping each
// chunk's payload, and hands each data stream to an inflater as a range of
// the file; the inflater reads that range itself. Every stream is then
// inflated as soon as an inflater is free, however large the streams are,
// and memory stays that of the inflaters' read buffers. A source that is
// not a file (a pipe, an object store's body) is read once, in order, as
// before (custom_parallel.go).

// atStarted, when set (by a test), is called as an inflater starts a
// stream read by position.
var atStarted func()

// atSource is a source read by position.
type atSource struct {
	ra   io.ReaderAt
	base int64 // the source's offset when Verify was called: byte 0 of the dump
	size int64 // bytes from base to the end, when Verify was called
	sk   io.Seeker
}

// readerAtOf returns src as a source read by position, or nil when it
// cannot be: not an io.ReaderAt and io.Seeker, not a regular file, or a
// seek fails.
func readerAtOf(src io.Reader) *atSource {
	ra, ok := src.(io.ReaderAt)
	sk, ok2 := src.(io.Seeker)
	if !ok || !ok2 {
		return nil
	}
	if f, ok := src.(*os.File); ok {
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
	}
	base, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil
	}
	end, err := sk.Seek(0, io.SeekEnd)
	if err != nil || end < base {
		sk.Seek(base, io.SeekStart)
		return nil
	}
	// The position is left at the end: the dump is read to its end, as
	// the streaming reader leaves it.
	return &atSource{ra: ra, base: base, size: end - base, sk: sk}
}

// section is the dump's bytes [off, end) (offsets from byte 0 of the dump).
func (a *atSource) section(off, end int64) *io.SectionReader {
	return io.NewSectionReader(a.ra, a.base+off, end-off)
}

// readerAt is the walking reader of a source read by position.
func (a *atSource) reader() *reader {
	sec := a.section(0, a.size)
	return &reader{r: bufio.NewReaderSize(sec, 64<<10), at: a, sec: sec}
}

// skip passes over n bytes: within the buffer, or by a seek past it. A
// skip past the end of the dump is a truncation, found at its end as the
// streaming reader finds it.
func (r *reader) skip(n int64) error {
	if b := int64(r.r.Buffered()); n <= b {
		r.r.Discard(int(n))
		r.pos += n
		return nil
	}
	if r.pos+n > r.at.size {
		n = r.at.size - r.pos
		err := io.ErrUnexpectedEOF
		if _, serr := r.sec.Seek(r.at.size, io.SeekStart); serr != nil {
			err = serr
		}
		r.pos += n
		r.r.Reset(r.sec)
		return r.eof(err)
	}
	r.pos += n
	if _, err := r.sec.Seek(r.pos, io.SeekStart); err != nil {
		return fmt.Errorf("read dump: %w", err)
	}
	r.r.Reset(r.sec)
	return nil
}

// streamAt walks one data stream's chunk headers up to its zero-length
// terminator and hands the stream to the inflaters as a range of the
// file; a stream the walk could not finish goes with its range up to
// where the walk stopped and the walk's error (as the streaming reader
// hands what it read before a cut).
func (p *producer) streamAt(e *tocEntry) error {
	r := p.r
	s := &stream{start: r.pos, entry: e, byPos: true}
	for {
		n, err := r.int()
		if err == nil && (n < 0 || n > maxChunk) {
			err = r.fail("implausible chunk length %d (corrupted)", n)
		}
		if err == nil && n == 0 {
			break
		}
		if err == nil {
			err = r.skip(n)
		}
		if err != nil {
			s.end, s.cut = r.pos, err
			s.idx = p.add()
			p.jobs <- s
			p.next = s.idx
			return err
		}
	}
	s.end = r.pos
	s.idx = p.add()
	p.next = s.idx + 1
	p.jobs <- s
	return nil
}

// runAt inflates a stream read by position: its chunk headers are read
// again from the file by the inflater, which reads the payloads into its
// own buffer.
func (f *inflater) runAt(s *stream) result {
	if atStarted != nil {
		atStarted()
	}
	sec := f.at.section(s.start, s.end)
	if f.raw == nil {
		f.raw = bufio.NewReaderSize(sec, 128<<10)
	} else {
		f.raw.Reset(sec)
	}
	c := &chunks{r: &reader{r: f.raw, pos: s.start, intSize: f.intSize}}
	var src io.Reader = c // the zlib checker reads in large blocks itself
	if f.comp != "gzip" || f.klauspost {
		if f.br == nil {
			f.br = bufio.NewReaderSize(c, 256<<10)
		} else {
			f.br.Reset(c)
		}
		src = f.br
	}
	f.countLines(s)
	res := f.count(f.inflate(src))
	if c.err != nil && (s.cut == nil || f.neededCut(res.err, c.err)) {
		if s.cut != nil {
			// The inflater reached the cut: the reader's own error is the
			// finding, and the reader reports it.
			return result{n: res.n, rows: -1}
		}
		// The walk read this stream to its terminator, but the inflater
		// did not find the same chunks: the file changed meanwhile.
		return result{n: res.n, rows: -1, entry: s.entry, err: fmt.Errorf("entry %d (%s %s): data block changed while it was read: %w", s.entry.id, s.entry.desc, s.entry.tag, c.err)}
	}
	return f.inflateResult(s, res)
}
