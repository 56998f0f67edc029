package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// File is the store of a directory of this host (archive_dir). Every
// operation goes through os.Root, so that no key, and no symbolic link
// planted in the directory, reaches outside it. Objects are created as
// hidden temporary files, synced, and published with a hard link (which
// never replaces) or a rename (Put, which does), then the directory is
// synced: a crash leaves an object whole or absent.
type File struct {
	dir string
}

var _ Store = (*File)(nil)

// NewFile returns the file store of dir, an absolute directory that need
// not exist yet (it is created, 0700, on the first write).
func NewFile(dir string) (*File, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("archive store %q: a directory must be absolute", dir)
	}
	return &File{dir: filepath.Clean(dir)}, nil
}

// Dir returns the store's directory.
func (s *File) Dir() string { return s.dir }

// Location returns the path of key.
func (s *File) Location(key string) string { return filepath.Join(s.dir, filepath.FromSlash(key)) }

func (s *File) root(create bool) (*os.Root, error) {
	if create {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, fmt.Errorf("archive store %s: %w", s.dir, err)
		}
	}
	r, err := os.OpenRoot(s.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("archive store %s: %w (%w)", s.dir, ErrNotExist, err)
		}
		return nil, fmt.Errorf("archive store %s: %w", s.dir, err)
	}
	return r, nil
}

// fileWriter is a temporary file published by Commit.
type fileWriter struct {
	s         *File
	root      *os.Root
	f         *os.File
	tmp, key  string
	finished  bool
	writeErrs error
	// off is how much has been written; started is where the writeback
	// started so far ends (writeback).
	off, started int64
}

// writebackChunk is how much a writer lets pile up in the page cache
// before it asks the kernel to start writing it out.
const writebackChunk = 4 << 20

func tempName(key string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return path.Join(path.Dir(key), "."+path.Base(key)+".tmp-"+hex.EncodeToString(b[:])), nil
}

func (s *File) create(key string) (*fileWriter, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	root, err := s.root(true)
	if err != nil {
		return nil, err
	}
	if d := path.Dir(key); d != "." {
		if err := root.MkdirAll(d, 0o700); err != nil {
			root.Close()
			return nil, fmt.Errorf("create %s: %w", s.Location(key), err)
		}
	}
	tmp, err := tempName(key)
	if err != nil {
		root.Close()
		return nil, err
	}
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("create %s: %w", s.Location(key), err)
	}
	return &fileWriter{s: s, root: root, f: f, tmp: tmp, key: key}, nil
}

// Create starts a new object under key.
func (s *File) Create(_ context.Context, key string) (Writer, error) { return s.create(key) }

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if err != nil {
		w.writeErrs = err
		err = fmt.Errorf("write %s: %w", w.s.Location(w.key), err)
	}
	w.writeback()
	return n, err
}

// writeback starts writing out each writebackChunk as soon as it is
// written, without waiting for it: the kernel would otherwise wait
// (dirty_expire_centisecs, 30 s by default) or for the Sync of Commit,
// which would then wait for the whole object to reach the disk. The
// disk works while the rest is produced, and the Sync (still what makes
// the object durable) waits only for the last chunks. A failure here is
// ignored: the Sync reports any write error.
func (w *fileWriter) writeback() {
	if w.off-w.started < writebackChunk {
		return
	}
	_ = unix.SyncFileRange(int(w.f.Fd()), w.started, w.off-w.started, unix.SYNC_FILE_RANGE_WRITE)
	w.started = w.off
}

// sync closes the temporary file after syncing it.
func (w *fileWriter) sync() error {
	serr := w.f.Sync()
	cerr := w.f.Close()
	if err := errors.Join(w.writeErrs, serr, cerr); err != nil {
		return fmt.Errorf("write %s: %w", w.s.Location(w.key), err)
	}
	return nil
}

func (w *fileWriter) publish(replace bool) error {
	if w.finished {
		return fmt.Errorf("write %s: already committed or aborted", w.s.Location(w.key))
	}
	w.finished = true
	defer w.root.Close()
	defer w.root.Remove(w.tmp) // after a link, or after a failure
	if err := w.sync(); err != nil {
		return err
	}
	var err error
	if replace {
		err = w.root.Rename(w.tmp, w.key)
	} else {
		err = w.root.Link(w.tmp, w.key)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", w.s.Location(w.key), ErrExists)
		}
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", w.s.Location(w.key), err)
	}
	return syncDirIn(w.root, path.Dir(w.key))
}

// Commit publishes the object; an object already under the key is
// ErrExists and is left as it was.
func (w *fileWriter) Commit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		w.Abort()
		return err
	}
	return w.publish(false)
}

// Abort removes the temporary file.
func (w *fileWriter) Abort() error {
	if w.finished {
		return nil
	}
	w.finished = true
	w.f.Close()
	err := w.root.Remove(w.tmp)
	w.root.Close()
	return err
}

func syncDirIn(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// Put atomically writes data under key, replacing any object there.
func (s *File) Put(ctx context.Context, key string, data []byte) error {
	w, err := s.create(key)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	if err := ctx.Err(); err != nil {
		w.Abort()
		return err
	}
	return w.publish(true)
}

func (s *File) notExist(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", s.Location(key), ErrNotExist)
	}
	return fmt.Errorf("%s: %w", s.Location(key), err)
}

// Open reads the object under key.
func (s *File) Open(_ context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	root, err := s.root(false)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.OpenFile(key, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, s.notExist(key, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not an object (a regular file)", s.Location(key))
	}
	return f, nil
}

// Stat describes the object under key.
func (s *File) Stat(_ context.Context, key string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	root, err := s.root(false)
	if err != nil {
		return Info{}, err
	}
	defer root.Close()
	fi, err := root.Lstat(key)
	if err != nil {
		return Info{}, s.notExist(key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%s: not an object (a regular file)", s.Location(key))
	}
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List returns the objects whose keys start with prefix. Hidden names
// (temporary objects, locks) and anything but regular files are left out;
// symbolic links are never followed.
func (s *File) List(_ context.Context, prefix string) ([]Info, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	root, err := s.root(false)
	if errors.Is(err, ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer root.Close()
	start := "."
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = prefix[:i]
	}
	var out []Info
	err = fs.WalkDir(root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == start {
				return fs.SkipAll
			}
			return err
		}
		if p != start && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			// Only folders that can hold keys with this prefix.
			if p != start && !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			return err
		}
		out = append(out, Info{Key: p, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.Location(prefix), err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Remove deletes the object under key and syncs its directory.
func (s *File) Remove(_ context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	root, err := s.root(false)
	if err != nil {
		return err
	}
	defer root.Close()
	fi, err := root.Lstat(key)
	if err != nil {
		return s.notExist(key, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not an object (a regular file): not removed", s.Location(key))
	}
	if err := root.Remove(key); err != nil {
		return s.notExist(key, err)
	}
	return syncDirIn(root, path.Dir(key))
}

// Lock takes an exclusive flock on <name>/.lock. A second run refuses at
// once with ErrLocked.
func (s *File) Lock(_ context.Context, name string) (func(), error) {
	if err := CheckKey(name); err != nil {
		return nil, err
	}
	root, err := s.root(true)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if err := root.MkdirAll(name, 0o700); err != nil {
		return nil, fmt.Errorf("lock %s: %w", s.Location(name), err)
	}
	lockKey := name + "/.lock"
	f, err := root.OpenFile(lockKey, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", s.Location(lockKey), err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", s.Location(lockKey), ErrLocked)
	}
	// A lock taken on a file no longer in place (removed by the run that
	// held it) is no lock.
	held, herr := f.Stat()
	now, nerr := root.Lstat(lockKey)
	if herr != nil || nerr != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w (the run holding it was finishing)", s.Location(lockKey), ErrLocked)
	}
	return func() { f.Close() }, nil
}
