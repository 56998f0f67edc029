package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Follower is a store whose objects can be read back while they are
// written (CreateFollowed). Only the directory store is one.
type Follower interface {
	CreateFollowed(ctx context.Context, key string) (*FollowWriter, error)
}

var _ Follower = (*File)(nil)

// FollowWriter is a new object of a directory store that has no name
// until it is committed: an unnamed file (O_TMPFILE) in the directory of
// its key, which no other process can open by a path, so that the bytes
// its Reader returns are, once Commit has linked it under its key, the
// object's bytes. Its writer only appends.
type FollowWriter struct {
	s    *File
	root *os.Root
	dir  *os.File // the key's directory
	f    *os.File // the unnamed file, read and write
	key  string

	mu   sync.Mutex
	cond *sync.Cond
	// off is how much has been written; ended is set once nothing more
	// will be (End, Commit, Abort); gone once the file is closed; want
	// is the least offset a waiting reader needs (0: none waits).
	off, want int64
	ended     bool
	gone      error
	finished  bool
	writeErrs error
	started   int64 // where the writeback started so far ends
	// written is the file's stamp at End, after the last write;
	// committed its stamp once linked under its key (Unchanged).
	written, committed *unix.Stat_t
}

// ErrNoUnnamedFiles is a directory whose file system does not make
// unnamed files (O_TMPFILE): its objects are written with Create.
var ErrNoUnnamedFiles = errors.New("the file system makes no unnamed files (O_TMPFILE)")

// CreateFollowed starts a new object under key, read back by Reader while
// it is written. A file system without O_TMPFILE is ErrNoUnnamedFiles.
func (s *File) CreateFollowed(_ context.Context, key string) (*FollowWriter, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	root, err := s.root(true)
	if err != nil {
		return nil, err
	}
	d := path.Dir(key)
	if d != "." {
		if err := root.MkdirAll(d, 0o700); err != nil {
			root.Close()
			return nil, fmt.Errorf("create %s: %w", s.Location(key), err)
		}
	}
	dir, err := root.Open(d)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("create %s: %w", s.Location(key), err)
	}
	fd, err := unix.Openat(int(dir.Fd()), ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		dir.Close()
		root.Close()
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("create %s: %w (%w)", s.Location(key), ErrNoUnnamedFiles, err)
		}
		return nil, fmt.Errorf("create %s: %w", s.Location(key), err)
	}
	w := &FollowWriter{s: s, root: root, dir: dir, f: os.NewFile(uintptr(fd), s.Location(key)), key: key}
	w.cond = sync.NewCond(&w.mu)
	return w, nil
}

func (w *FollowWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	ended := w.ended
	w.mu.Unlock()
	if ended {
		return 0, fmt.Errorf("write %s: %w", w.s.Location(w.key), errWriteAfterEnd)
	}
	n, err := w.f.Write(p)
	w.mu.Lock()
	w.off += int64(n)
	if err != nil {
		w.writeErrs = err
	}
	if w.want != 0 && w.off >= w.want {
		w.want = 0
		w.cond.Broadcast()
	}
	w.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("write %s: %w", w.s.Location(w.key), err)
	}
	if w.off-w.started >= writebackChunk {
		// As fileWriter.writeback: the Sync of Commit then waits only for
		// the last chunks.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.started, w.off-w.started, unix.SYNC_FILE_RANGE_WRITE)
		w.started = w.off
	}
	return n, nil
}

var errWriteAfterEnd = errors.New("written to after its end")

// followChunk is how much a reader that has caught up with the writer
// waits for before it reads on.
const followChunk = 1 << 20

// End says that nothing more will be written: the Reader returns io.EOF
// once it has read everything, and Write fails. It takes the file's
// stamp, which Commit compares: a write by anything else after End
// (through /proc) changes its modification time. (Since Linux 6.13 a
// time stamp queried is followed by a fine-grained one: a change is never
// lost within a clock tick.)
func (w *FollowWriter) End() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	w.ended = true
	w.cond.Broadcast()
	var st unix.Stat_t
	if unix.Fstat(int(w.f.Fd()), &st) == nil {
		w.written = &st
	}
}

// Size is how much has been written.
func (w *FollowWriter) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.off
}

// Reader returns a reader of the object from its first byte, which waits
// for what is not written yet and ends (io.EOF) after End, or fails after
// Abort. Several readers may follow one writer.
func (w *FollowWriter) Reader() io.Reader { return &followReader{w: w} }

type followReader struct {
	w   *FollowWriter
	off int64
}

func (r *followReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	w := r.w
	w.mu.Lock()
	if w.off <= r.off {
		// Caught up: wait for a whole followChunk, not for each write
		// (each wake-up costs a context switch, and more on a busy
		// machine).
		need := r.off + followChunk
		for w.off < need && !w.ended && w.gone == nil {
			if w.want == 0 || need < w.want {
				w.want = need
			}
			w.cond.Wait()
		}
	}
	avail, gone := w.off-r.off, w.gone
	w.mu.Unlock()
	if gone != nil {
		return 0, gone
	}
	if avail <= 0 {
		return 0, io.EOF
	}
	n, err := w.f.ReadAt(p[:min(int64(len(p)), avail)], r.off)
	r.off += int64(n)
	if err == io.EOF {
		// Shorter than what was written: never, as only this writer
		// writes it.
		err = fmt.Errorf("read %s back: %d bytes where %d were written: %w", w.s.Location(w.key), r.off, r.off+avail-int64(n), io.ErrUnexpectedEOF)
	}
	return n, err
}

// Commit syncs the file and links it under its key (an object already
// there is ErrExists and is left as it was), then checks that the key
// names this very file, at the size written, and syncs the directory.
func (w *FollowWriter) Commit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		w.Abort()
		return err
	}
	w.End()
	w.mu.Lock()
	if w.finished {
		w.mu.Unlock()
		return fmt.Errorf("write %s: already committed or aborted", w.s.Location(w.key))
	}
	w.finished = true
	w.mu.Unlock()
	defer w.close()
	loc := w.s.Location(w.key)
	if err := errors.Join(w.writeErrs, w.f.Sync()); err != nil {
		return fmt.Errorf("write %s: %w", loc, err)
	}
	var before unix.Stat_t
	if err := unix.Fstat(int(w.f.Fd()), &before); err != nil {
		return fmt.Errorf("write %s: %w", loc, err)
	}
	if w.written == nil || w.written.Mtim != before.Mtim || w.written.Size != before.Size {
		return fmt.Errorf("write %s: %w", loc, ErrChangedAfterWrite)
	}
	base := path.Base(w.key)
	// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the link through /proc
	// does not.
	err := unix.Linkat(int(w.f.Fd()), "", int(w.dir.Fd()), base, unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOENT) {
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(w.f.Fd())), int(w.dir.Fd()), base, unix.AT_SYMLINK_FOLLOW)
	}
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create %s: %w", loc, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", loc, &fs.PathError{Op: "link", Path: loc, Err: err})
	}
	var mine, named unix.Stat_t
	if err := unix.Fstat(int(w.f.Fd()), &mine); err != nil {
		return fmt.Errorf("publish %s: %w", loc, err)
	}
	if err := unix.Fstatat(int(w.dir.Fd()), base, &named, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("publish %s: %w", loc, err)
	}
	if mine.Dev != named.Dev || mine.Ino != named.Ino || named.Size != w.off {
		return fmt.Errorf("publish %s: the file under the key is not the one written (%d bytes)", loc, w.off)
	}
	if w.written == nil || w.written.Mtim != mine.Mtim || w.written.Size != mine.Size {
		return fmt.Errorf("publish %s: %w", loc, ErrChangedAfterWrite)
	}
	w.committed = &mine
	if err := w.dir.Sync(); err != nil {
		return fmt.Errorf("publish %s: sync its directory: %w", loc, err)
	}
	return nil
}

// Abort drops the file (it never had a name) and fails its readers.
func (w *FollowWriter) Abort() error {
	w.mu.Lock()
	if w.finished {
		w.mu.Unlock()
		return nil
	}
	w.finished = true
	w.mu.Unlock()
	w.close()
	return nil
}

// close closes the file; readers still following get an error.
func (w *FollowWriter) close() {
	w.mu.Lock()
	w.ended = true
	w.gone = fmt.Errorf("read %s back: %w", w.s.Location(w.key), fs.ErrClosed)
	w.cond.Broadcast()
	w.mu.Unlock()
	w.f.Close()
	w.dir.Close()
	w.root.Close()
}

// ErrChangedAfterWrite is an object changed by something else than its
// writer after it was written.
var ErrChangedAfterWrite = errors.New("changed after it was written and read back")

// Unchanged checks that the key still names the file committed, with
// the stamp it had then (device, inode, size, modification and change
// times): a write, truncation, replacement or new link since changes one.
func (w *FollowWriter) Unchanged() error {
	loc := w.s.Location(w.key)
	if w.committed == nil {
		return fmt.Errorf("%s: not committed", loc)
	}
	root, err := w.s.root(false)
	if err != nil {
		return err
	}
	defer root.Close()
	fi, err := root.Lstat(w.key)
	if err != nil {
		return fmt.Errorf("%s: %w", loc, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	c := w.committed
	if !ok || st.Dev != c.Dev || st.Ino != c.Ino || st.Size != c.Size || st.Nlink != c.Nlink ||
		st.Mtim != syscall.Timespec(c.Mtim) || st.Ctim != syscall.Timespec(c.Ctim) {
		return fmt.Errorf("%s: %w", loc, ErrChangedAfterWrite)
	}
	return nil
}
