package sqlitedb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite"
)

// CopyResult describes a finished copy.
type CopyResult struct {
	Pages    int
	PageSize int64
	Bytes    int64
}

// backuper is the backup API of a modernc.org/sqlite connection.
type backuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// busyRetry is how long Copy waits between attempts while a writer holds
// a lock that keeps the backup from reading (a rollback-journal database
// being written).
const busyRetry = 50 * time.Millisecond

// Copy makes a consistent copy of the live database at src into dst, a
// new file (it must not exist), through SQLite's online backup API: every
// page in one step, inside one read transaction, so that the copy is the
// database as of one commit, with what is still in src's -wal, while
// writers go on (in WAL mode; a rollback-journal database's writers wait
// for the step). The copy is then made self-contained (journal_mode
// DELETE, no -wal of its own), checked with PRAGMA integrity_check,
// synced, and only then renamed to dst; the directory is synced too. On
// failure nothing is left at dst.
//
// src is opened read-only, never created (a missing database is an
// error, not an empty copy): a read-write connection, the last to close,
// would checkpoint the -wal into the file and delete it, changing the
// live database's files under the application (and under a quarantine
// that must carry that -wal). A hot journal (a writer killed mid
// transaction) then fails the copy: the application recovers it when it
// next opens the database.
func Copy(ctx context.Context, src, dst string) (*CopyResult, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("sqlite copy: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("sqlite copy: %s is not a regular file", src)
	}
	// Only the magic string: a writer may be growing the live file.
	if _, err := readHeader(src, false); err != nil {
		return nil, fmt.Errorf("sqlite copy: %w", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return nil, fmt.Errorf("sqlite copy: %s already exists", dst)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sqlite copy: %w", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-"+hex.EncodeToString(b))
	done := false
	defer func() {
		if !done {
			for _, p := range []string{tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"} {
				os.Remove(p)
			}
		}
	}()
	// The temporary file is created here, exclusively, with the mode of
	// the source, so that the backup writes into our own new file.
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, st.Mode().Perm())
	if err != nil {
		return nil, fmt.Errorf("sqlite copy: %w", err)
	}
	f.Close()

	srcDB, err := open(src, "mode=ro&_busy_timeout=10000")
	if err != nil {
		return nil, fmt.Errorf("sqlite copy: open %s: %w", src, err)
	}
	defer srcDB.Close()
	dstURI, err := uri(tmp, "mode=rw")
	if err != nil {
		return nil, err
	}
	res := &CopyResult{}
	if err := backup(ctx, srcDB, dstURI, res); err != nil {
		return nil, fmt.Errorf("sqlite copy of %s: %w", src, err)
	}
	if err := finish(ctx, tmp); err != nil {
		return nil, fmt.Errorf("sqlite copy of %s: %w", src, err)
	}
	h, err := ReadHeader(tmp)
	if err != nil {
		return nil, fmt.Errorf("sqlite copy of %s: %w", src, err)
	}
	res.PageSize = h.PageSize
	if err := syncFile(tmp); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(dst); err == nil {
		return nil, fmt.Errorf("sqlite copy: %s appeared meanwhile; the copy is not put in its place", dst)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("sqlite copy: %w", err)
	}
	done = true
	if err := syncFile(filepath.Dir(dst)); err != nil {
		return res, fmt.Errorf("sqlite copy: %s written, but its directory not synced: %w", dst, err)
	}
	if st, err := os.Stat(dst); err == nil {
		res.Bytes = st.Size()
	}
	return res, nil
}

// backup copies every page of srcDB into the database at dstURI in one
// step; a step refused because a writer holds the lock is tried again
// until ctx ends.
func backup(ctx context.Context, srcDB *sql.DB, dstURI string, res *CopyResult) error {
	conn, err := srcDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for {
		err := conn.Raw(func(dc any) error {
			b, ok := dc.(backuper)
			if !ok {
				return fmt.Errorf("the sqlite driver has no backup API (%T)", dc)
			}
			bk, err := b.NewBackup(dstURI)
			if err != nil {
				return err
			}
			_, stepErr := bk.Step(-1)
			res.Pages = bk.PageCount()
			if ferr := bk.Finish(); stepErr == nil {
				stepErr = ferr
			}
			return stepErr
		})
		if err == nil {
			return nil
		}
		var se *sqlite.Error
		if !errors.As(err, &se) || (se.Code()&0xff != 5 && se.Code()&0xff != 6) { // SQLITE_BUSY, SQLITE_LOCKED
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (a writer kept the database locked: %v)", ctx.Err(), err)
		case <-time.After(busyRetry):
		}
	}
}

// finish makes the copy self-contained (journal_mode DELETE: no -wal of
// its own) and runs PRAGMA integrity_check on it.
func finish(ctx context.Context, path string) error {
	db, err := open(path, "mode=rw")
	if err != nil {
		return err
	}
	defer db.Close()
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = DELETE").Scan(&mode); err != nil {
		return fmt.Errorf("journal_mode of the copy: %w", err)
	}
	if err := integrity(ctx, db, path); err != nil {
		return err
	}
	return db.Close()
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}
