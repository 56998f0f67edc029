// Package atomicfile replaces a file so that a reader, or the file system
// after a crash, sees either the whole previous content or the whole new
// one, never a mix or a cut: the new content goes into a temporary file of
// its own in the same directory, which is fsynced, given its mode, renamed
// over the destination, and then the directory is fsynced so that the
// rename itself survives a crash.
//
// The temporary file is named ".<base>.<random>.tmp" (hidden, and ending in
// .tmp, the names the callers' stale-file sweeps remove). It is removed on
// any failure short of the process being killed.
//
// A destination that is a symbolic link is replaced by a regular file: the
// link is never followed, so nothing is written outside the directory.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File is a replacement of a file under way. Write the new content, then
// Commit; Abort (safe to defer, a no-op after Commit) gives up and removes
// the temporary file.
type File struct {
	f    *os.File
	path string
	perm fs.FileMode
	done bool
}

// Create starts the replacement of path by a file of mode perm (set as
// given, whatever the umask). Nothing at path changes before Commit.
func Create(path string, perm fs.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("atomic write %s: %w", path, err)
	}
	return &File{f: f, path: path, perm: perm}, nil
}

// Write writes to the temporary file.
func (a *File) Write(p []byte) (int, error) { return a.f.Write(p) }

// TempName is the path of the temporary file.
func (a *File) TempName() string { return a.f.Name() }

// Commit gives the temporary file its mode, fsyncs it, renames it over the
// destination and fsyncs the directory. On an error before the rename the
// destination is as it was and the temporary file is removed; on an error
// of the directory fsync the new file is in place (the error says so).
func (a *File) Commit() error {
	if a.done {
		return fmt.Errorf("atomic write %s: already committed or aborted", a.path)
	}
	tmp := a.f.Name()
	fail := func(err error) error {
		a.f.Close()
		os.Remove(tmp)
		a.done = true
		return fmt.Errorf("atomic write %s: %w", a.path, err)
	}
	if err := a.f.Chmod(a.perm); err != nil {
		return fail(err)
	}
	if err := a.f.Sync(); err != nil {
		return fail(err)
	}
	a.done = true
	if err := a.f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomic write %s: %w", a.path, err)
	}
	if err := os.Rename(tmp, a.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomic write %s: %w", a.path, err)
	}
	if err := SyncDir(filepath.Dir(a.path)); err != nil {
		return fmt.Errorf("atomic write %s: the new file is in place, but %w", a.path, err)
	}
	return nil
}

// Abort gives up: the temporary file is closed and removed, the
// destination untouched. It does nothing after Commit.
func (a *File) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.f.Close()
	os.Remove(a.f.Name())
}

// WriteFile replaces path by a file of mode perm holding data.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	a, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := a.Write(data); err != nil {
		a.Abort()
		return fmt.Errorf("atomic write %s: %w", path, err)
	}
	return a.Commit()
}

// RemoveStale removes the temporary files of path (named as Create names
// them) last modified more than olderThan ago: the leftovers of writers
// killed while writing, which nothing else removes. A writer at work keeps
// its file as long as olderThan exceeds its longest write. Best effort:
// what cannot be read or removed stays.
func RemoveStale(path string, olderThan time.Duration) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return
	}
	prefix := "." + filepath.Base(path) + "."
	for _, e := range entries {
		n := e.Name()
		mid, ok := strings.CutPrefix(n, prefix)
		if mid, ok = strings.CutSuffix(mid, ".tmp"); !ok || mid == "" || strings.Trim(mid, "0123456789") != "" {
			continue // another file's, or not a temporary file
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && time.Since(fi.ModTime()) > olderThan {
			os.Remove(filepath.Join(filepath.Dir(path), n))
		}
	}
}

// SyncDir fsyncs a directory, so that the names created, renamed or
// removed in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	serr := d.Sync()
	cerr := d.Close()
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
