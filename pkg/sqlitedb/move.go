package sqlitedb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Companions are the files SQLite keeps beside a database, named after
// it: a rollback journal (which may be hot: a transaction to roll back),
// the write-ahead log (which may hold committed pages not yet in the
// file) and the WAL index. The database is the file and these together.
var Companions = []string{"-journal", "-wal", "-shm"}

// Parts lists the parts of the database at path that exist: the file
// itself first when it exists, then each companion present.
func Parts(path string) ([]string, error) {
	var out []string
	for _, suf := range append([]string{""}, Companions...) {
		switch _, err := os.Lstat(path + suf); {
		case err == nil:
			out = append(out, path+suf)
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	return out, nil
}

// Holder is a process that has a part of a database open.
type Holder struct {
	PID     int
	Command string
	File    string
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d (%s) has %s open", h.PID, h.Command, h.File)
}

// InUseError is a database that processes have open.
type InUseError struct {
	Path    string
	Holders []Holder
}

func (e *InUseError) Error() string {
	s := make([]string, len(e.Holders))
	for i, h := range e.Holders {
		s[i] = h.String()
	}
	return fmt.Sprintf("sqlite database %s is in use: %s", e.Path, strings.Join(s, "; "))
}

// Hint tells the operator what to do.
func (e *InUseError) Hint() string {
	return "stop the application (its systemd unit) so that no process holds the database open, then run again; nothing was moved"
}

// Holders lists the processes (other than this one) that hold the
// database at path or one of its companions open, from /proc.
func Holders(path string) ([]Holder, error) {
	want := map[string]bool{}
	for _, suf := range append([]string{""}, Companions...) {
		abs, err := filepath.Abs(path + suf)
		if err != nil {
			return nil, err
		}
		want[abs] = true
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var out []Holder
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue // gone meanwhile, or not ours to see
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err != nil || !want[target] {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
			out = append(out, Holder{PID: pid, Command: strings.TrimSpace(string(comm)), File: target})
			break
		}
	}
	return out, nil
}

// ConflictError is a move whose destination already holds a part of a
// database.
type ConflictError struct{ Src, Dst string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("cannot move %s: %s already exists", e.Src, e.Dst)
}

// Hint tells the operator what to do.
func (e *ConflictError) Hint() string {
	return "another database is in the way; move it aside by hand (with its -journal, -wal and -shm) and run again"
}

// Move renames the database at src, with every companion present, to
// dst (same file system: quarantine and restore are renames), after
// refusing (*InUseError, nothing moved) while a process holds any of them
// open. Every name of the database at dst must be free (*ConflictError
// before anything moves): a stray -journal beside the moved file would
// be taken for a hot journal and rolled back into it, a stray -wal read
// into it. A -wal is never left behind: it may hold committed rows the
// file lacks.
//
// The file goes first, then its companions, so that a move cut short (a
// crash) is told apart from a conflict: no file at src and the file at
// dst. Move called again then moves the companions still at src; when
// nothing is left at src and the file is at dst, it returns nil at once.
// Both directories are synced.
func Move(ctx context.Context, src, dst string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	srcParts, err := Parts(src)
	if err != nil {
		return fmt.Errorf("move %s: %w", src, err)
	}
	for _, p := range srcParts {
		if st, err := os.Lstat(p); err == nil && !st.Mode().IsRegular() {
			return fmt.Errorf("move %s: %s is not a regular file (%s)", src, p, st.Mode().Type())
		}
	}
	fileAtSrc := len(srcParts) > 0 && srcParts[0] == src
	_, err = os.Lstat(dst)
	fileAtDst := err == nil
	switch {
	case !fileAtSrc && !fileAtDst:
		if len(srcParts) > 0 {
			return fmt.Errorf("move %s: only its companions are there (%s), no database file: %w", src, strings.Join(srcParts, ", "), os.ErrNotExist)
		}
		return fmt.Errorf("move %s: %w", src, os.ErrNotExist)
	case !fileAtSrc && len(srcParts) == 0:
		return nil // moved before
	}
	if fileAtSrc {
		for _, suf := range append([]string{""}, Companions...) {
			if _, err := os.Lstat(dst + suf); err == nil {
				return &ConflictError{Src: src, Dst: dst + suf}
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("move %s: %w", src, err)
			}
		}
	} else {
		// Cut short before: the file is at dst; what is left at src
		// must find its name free.
		for _, p := range srcParts {
			d := dst + strings.TrimPrefix(p, src)
			if _, err := os.Lstat(d); err == nil {
				return &ConflictError{Src: p, Dst: d}
			}
		}
	}
	if h, err := Holders(src); err != nil {
		return fmt.Errorf("move %s: %w", src, err)
	} else if len(h) > 0 {
		return &InUseError{Path: src, Holders: h}
	}
	for _, p := range srcParts {
		if err := os.Rename(p, dst+strings.TrimPrefix(p, src)); err != nil {
			return fmt.Errorf("move %s to %s cut short at %s (run again to finish): %w", src, dst, p, err)
		}
		if err := testCrash("moved" + strings.TrimPrefix(p, src)); err != nil {
			return err
		}
	}
	for _, d := range []string{filepath.Dir(dst), filepath.Dir(src)} {
		if err := syncFile(d); err != nil {
			return fmt.Errorf("move %s: moved, but: %w", src, err)
		}
	}
	return nil
}

// testCrashAt, set by tests, stops a move after a step.
var testCrashAt func(step string) bool

// ErrTestCrash is what a move stopped by a test crash returns.
var ErrTestCrash = errors.New("stopped by a test crash")

func testCrash(step string) error {
	if testCrashAt != nil && testCrashAt(step) {
		return ErrTestCrash
	}
	return nil
}
