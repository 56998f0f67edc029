package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/backup"
)

// pinned is a backup file held open from its checks to its restore: the
// checks (backup.Judge) and the restore (extraction, pg_restore, psql)
// read it through the descriptor's /proc path, so that a file renamed
// over the backup's path meanwhile is never the one restored.
type pinned struct {
	f       *os.File
	content string
	size    int64
	mtime   time.Time
	// remove, when set, closes f and removes it (the scratch copy of an
	// object).
	remove func()
}

// pin opens path without following a link and without blocking (a FIFO);
// nil when it is not a regular file (the checks refuse it by its path).
func pin(path string) *pinned {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil
	}
	return &pinned{f: f, content: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()), size: fi.Size(), mtime: fi.ModTime()}
}

// changed says whether the pinned file was written to since it was
// opened (in place: a backup job still writing it).
func (p *pinned) changed() error {
	if p == nil {
		return nil
	}
	fi, err := p.f.Stat()
	if err != nil {
		return fmt.Errorf("the backup file could not be inspected again after it was read: %w", err)
	}
	if fi.Size() != p.size || !fi.ModTime().Equal(p.mtime) {
		return fmt.Errorf("the backup file changed while it was read (size %d -> %d, mtime %s -> %s): still being written?",
			p.size, fi.Size(), p.mtime.UTC().Format(time.RFC3339Nano), fi.ModTime().UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func (p *pinned) close() {
	switch {
	case p == nil:
	case p.remove != nil:
		p.remove()
	default:
		_ = p.f.Close()
	}
}

// pinCandidate pins a candidate: a file by pin, an object in object
// storage (a backup rule s3://bucket/...) by a copy into a private
// temporary directory (pg_restore, the extraction and SQLite read a
// file), which the checks and the restore then read and which is removed
// when the pin is closed; nil when it cannot be copied (the checks then
// read the object and say why), except when the copy does not fit the
// scratch directory (TMPDIR): that is returned, a *backup.ScratchSpaceError
// naming the size needed and the directory, and the candidate is refused
// for it.
func pinCandidate(ctx context.Context, c backup.Candidate) (*pinned, error) {
	if !c.Remote() {
		return pin(c.Path), nil
	}
	f, remove, err := c.Download(ctx, "")
	var se *backup.ScratchSpaceError
	if errors.As(err, &se) {
		return nil, err
	}
	if err != nil {
		return nil, nil
	}
	fi, err := f.Stat()
	if err != nil {
		remove()
		return nil, nil
	}
	return &pinned{f: f, content: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()), size: fi.Size(), mtime: fi.ModTime(), remove: remove}, nil
}
