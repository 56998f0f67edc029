package encrypted

import (
	"errors"
	"io"
	"sync"
)

// Encryption and decryption each run on a goroutine of their own, so that
// age's ChaCha20-Poly1305 overlaps the archive's tar and zstd when it is
// written, and the checker's zstd, tar and sha256 when it is read back,
// on a second core. Between the stages, at most pipeDepth chunks of
// pipeChunk bytes wait: memory stays flat (about 1.5 MiB a stream)
// whatever the archive's size.
const (
	pipeChunk = 256 << 10
	pipeDepth = 4
)

var (
	errPipeClosed = errors.New("write after the archive was sealed or aborted")
	errReadClosed = errors.New("read after close")
)

// asyncWriter hands what is written to w on a goroutine of its own, in
// chunks. The first error of w is returned by the next Write (and by
// Close); what was queued after it is dropped, w is not written again.
type asyncWriter struct {
	w    io.Writer
	buf  []byte
	ch   chan []byte
	free chan []byte
	stop chan struct{} // closed by abandon: queued chunks are dropped
	done chan struct{} // closed when the goroutine ends
	// failed is closed by the goroutine once err is set: err is read
	// only after failed (or done) is seen closed.
	failed chan struct{}
	err    error
	closed bool
}

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{w: w, ch: make(chan []byte, pipeDepth), free: make(chan []byte, pipeDepth+2),
		stop: make(chan struct{}), done: make(chan struct{}), failed: make(chan struct{})}
	go a.run()
	return a
}

func (a *asyncWriter) run() {
	defer close(a.done)
	for b := range a.ch {
		select {
		case <-a.stop:
			continue
		case <-a.failed:
			continue
		default:
		}
		if _, err := a.w.Write(b); err != nil {
			a.err = err
			close(a.failed)
			continue
		}
		select {
		case a.free <- b[:0]:
		default:
		}
	}
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	if a.closed {
		return 0, errPipeClosed
	}
	n := 0
	for len(p) > 0 {
		select {
		case <-a.failed:
			return n, a.err
		default:
		}
		if a.buf == nil {
			select {
			case b := <-a.free:
				a.buf = b
			default:
				a.buf = make([]byte, 0, pipeChunk)
			}
		}
		c := min(pipeChunk-len(a.buf), len(p))
		a.buf = append(a.buf, p[:c]...)
		p, n = p[c:], n+c
		if len(a.buf) == pipeChunk {
			if err := a.send(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// send queues the filled buffer; it waits while pipeDepth chunks are
// queued, unless w failed.
func (a *asyncWriter) send() error {
	select {
	case a.ch <- a.buf:
		a.buf = nil
		return nil
	case <-a.failed:
		return a.err
	}
}

// Close queues what is buffered, waits until w has been handed every
// chunk, and returns w's first error.
func (a *asyncWriter) Close() error {
	if a.closed {
		<-a.done
		return a.err
	}
	var err error
	if len(a.buf) > 0 {
		err = a.send()
	}
	a.closed = true
	a.buf = nil
	close(a.ch)
	<-a.done
	if a.err != nil {
		return a.err
	}
	return err
}

// abandon drops what is queued and ends the goroutine, without an error.
func (a *asyncWriter) abandon() {
	if a.closed {
		<-a.done
		return
	}
	a.closed = true
	a.buf = nil
	close(a.stop)
	close(a.ch)
	<-a.done
}

// readAhead reads r on a goroutine of its own, in chunks, at most
// pipeDepth chunks ahead of Read. r's error (io.EOF at its end) comes
// after the bytes read before it, as from r itself.
type readAhead struct {
	r    io.Reader
	ch   chan chunk
	free chan []byte
	stop chan struct{}
	done chan struct{}

	cur, curBuf []byte
	err         error
	closed      bool
	closeOnce   sync.Once
	closer      io.Closer
}

type chunk struct {
	b   []byte
	err error
}

// newReadAhead reads r ahead; closer (the object under r) is closed by
// Close before it waits for the goroutine, so that a read blocked on the
// network ends.
func newReadAhead(r io.Reader, closer io.Closer) *readAhead {
	ra := &readAhead{r: r, closer: closer, ch: make(chan chunk, pipeDepth), free: make(chan []byte, pipeDepth+2),
		stop: make(chan struct{}), done: make(chan struct{})}
	go ra.run()
	return ra
}

func (ra *readAhead) run() {
	defer close(ra.done)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		default:
			b = make([]byte, pipeChunk)
		}
		n, err := io.ReadFull(ra.r, b[:pipeChunk])
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case ra.ch <- chunk{b[:n], err}:
		case <-ra.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if ra.closed {
		return 0, errReadClosed
	}
	for len(ra.cur) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.curBuf != nil {
			select {
			case ra.free <- ra.curBuf[:cap(ra.curBuf)]:
			default:
			}
			ra.curBuf = nil
		}
		c := <-ra.ch
		ra.cur, ra.curBuf, ra.err = c.b, c.b, c.err
		if len(p) == 0 {
			return 0, nil
		}
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the read-ahead, closes the object and waits for the
// goroutine: no read of r follows.
func (ra *readAhead) Close() error {
	var err error
	ra.closed = true
	ra.closeOnce.Do(func() {
		close(ra.stop)
		if ra.closer != nil {
			err = ra.closer.Close()
		}
		<-ra.done
	})
	return err
}
