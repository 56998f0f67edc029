package archive

import (
	"context"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/mholt/archives"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Progress is how far a long piece of work has come, reported through the
// Progress callback of Request, RestoreRequest and VerifyOptions.
//
// Within a phase BytesDone and FilesDone never go down, BytesTotal and
// FilesTotal neither (a total grows when more was read than expected), the
// done values never exceed the totals, and the last report of a phase that
// ran to its end has the done values equal to the totals.
type Progress struct {
	// Phase is PhaseArchive, PhaseVerify or PhaseRestore.
	Phase string
	// BytesDone of BytesTotal: in phase archive, the bytes of the files
	// and dumps read into the archive; in phases verify and restore, the
	// bytes of the archive file read back.
	BytesDone, BytesTotal int64
	// FilesDone of FilesTotal: the files and dumps read into the archive
	// (phase archive); 0 in the other phases.
	FilesDone, FilesTotal int
}

// The phases of Progress.
const (
	// PhaseArchive reads the instance's files and database dumps into
	// the archive.
	PhaseArchive = "archive"
	// PhaseVerify reads the archive back and checks every entry.
	PhaseVerify = "verify"
	// PhaseRestore reads the archive back and extracts the components.
	PhaseRestore = "restore"
)

// ProgressInterval is the least time between two reports of a phase (its
// first and its last are always reported).
const ProgressInterval = 100 * time.Millisecond

// VerifyOptions are the options of VerifyArchiveWith.
type VerifyOptions struct {
	// Progress, when set, is called with the progress of reading the
	// archive back (phase verify). Nil: nothing is reported.
	Progress func(Progress)
}

// VerifyArchiveWith is VerifyArchive with options.
func VerifyArchiveWith(ctx context.Context, path string, opts VerifyOptions) (*Manifest, error) {
	return VerifyArchive(WithProgress(ctx, opts.Progress), path)
}

// The callback travels with the context from the entry points (Delete,
// Restore, VerifyArchiveWith) to the few places where bytes flow, so that
// the functions between them keep their signatures.
type progressKey struct{}

func WithProgress(ctx context.Context, fn func(Progress)) context.Context {
	if fn == nil {
		return ctx
	}
	return context.WithValue(ctx, progressKey{}, fn)
}

func progressFunc(ctx context.Context) func(Progress) {
	fn, _ := ctx.Value(progressKey{}).(func(Progress))
	return fn
}

// meter counts one phase's progress and reports it at a bounded rate.
type meter struct {
	mu   sync.Mutex
	fn   func(Progress)
	p    Progress
	last time.Time
	done bool
}

func newMeter(fn func(Progress), phase string, bytes int64, files int) *meter {
	m := &meter{fn: fn, p: Progress{Phase: phase, BytesTotal: bytes, FilesTotal: files}}
	m.add(0, 0)
	return m
}

// add counts n more bytes and files more files.
func (m *meter) add(n int64, files int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done {
		return
	}
	m.p.BytesDone += n
	m.p.FilesDone += files
	m.p.BytesTotal = max(m.p.BytesTotal, m.p.BytesDone)
	m.p.FilesTotal = max(m.p.FilesTotal, m.p.FilesDone)
	complete := m.p.BytesDone == m.p.BytesTotal && m.p.FilesDone == m.p.FilesTotal
	now := time.Now()
	if !complete && !m.last.IsZero() && now.Sub(m.last) < ProgressInterval {
		return
	}
	m.last, m.done = now, complete
	m.fn(m.p)
}

// OpenMetered opens the archive under key in st for reading with the
// progress of phase counted in its bytes, when ctx carries a callback.
func OpenMetered(ctx context.Context, phase string, st store.Store, key string) (io.ReadCloser, error) {
	f, err := st.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	fn := progressFunc(ctx)
	if fn == nil {
		return f, nil
	}
	fi, err := st.Stat(ctx, key)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &meteredReader{ReadCloser: f, m: newMeter(fn, phase, fi.Size, 0)}, nil
}

type meteredReader struct {
	io.ReadCloser
	m *meter
}

// Unwrap returns the reader metered.
func (r *meteredReader) Unwrap() io.ReadCloser { return r.ReadCloser }

func (r *meteredReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.m.add(int64(n), 0)
	return n, err
}

// fileMeter returns what counts the progress of phase archive in the
// reads of the regular files it is given (their Open), bytes in n files
// in all, when ctx carries a callback: the files can be met one at a
// time.
func fileMeter(ctx context.Context, bytes int64, n int) func(archives.FileInfo) archives.FileInfo {
	fn := progressFunc(ctx)
	if fn == nil {
		return func(f archives.FileInfo) archives.FileInfo { return f }
	}
	m := newMeter(fn, PhaseArchive, bytes, n)
	return func(f archives.FileInfo) archives.FileInfo {
		if f.Open != nil && f.Mode().IsRegular() {
			open := f.Open
			f.Open = func() (fs.File, error) {
				file, err := open()
				if err != nil {
					return nil, err
				}
				return &meteredFile{File: file, m: m}, nil
			}
		}
		return f
	}
}

// meteredFile counts its bytes read, and itself once closed.
type meteredFile struct {
	fs.File
	m      *meter
	closed bool
}

func (f *meteredFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.m.add(int64(n), 0)
	return n, err
}

func (f *meteredFile) Close() error {
	err := f.File.Close()
	if !f.closed {
		f.closed = true
		f.m.add(0, 1)
	}
	return err
}
