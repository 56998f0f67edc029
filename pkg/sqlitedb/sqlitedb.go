// Package sqlitedb copies and checks the SQLite databases of instances: a
// consistent copy of a live database through SQLite's online backup API
// (never a plain copy of the file, which may be mid-write and misses what
// is still in its -wal), and PRAGMA integrity_check of a copy or a backup.
//
// It uses modernc.org/sqlite, SQLite translated to Go: no cgo (the modules
// are built with CGO_ENABLED=0), no WebAssembly runtime to compile at each
// start of a short-lived module (ncruces/go-sqlite3), and its connection
// exposes the backup API (NewBackup, Step, Finish).
package sqlitedb

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Header is the first 16 bytes of every SQLite database file.
const Header = "SQLite format 3\x00"

// uri is a SQLite URI for path (made absolute, every special character
// escaped, so that "?", "#" or "%" in a name is never read as a
// parameter) with the query q.
func uri(path, q string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: abs, OmitHost: true}
	return u.String() + "?" + q, nil
}

// open opens the database at path with SQLite URI parameters q (mode=ro,
// mode=rw, immutable=1, …) on one connection.
func open(path, q string) (*sql.DB, error) {
	dsn, err := uri(path, q)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// HeaderInfo is what the 100-byte header of a database file tells.
type HeaderInfo struct {
	PageSize int64
	// Pages is the size in pages the header records (0 when the header
	// predates that field: SQLite before 3.7.0).
	Pages int64
	// WAL is true when the file is in WAL mode (its -wal belongs to it).
	WAL bool
}

// CorruptError is a file that is not a whole SQLite database.
type CorruptError struct {
	Path string
	Msg  string
	// Problems are the lines PRAGMA integrity_check gave, when it ran.
	Problems []string
}

func (e *CorruptError) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Path, e.Msg)
	if len(e.Problems) > 0 {
		n := min(len(e.Problems), 5)
		msg += ": " + strings.Join(e.Problems[:n], "; ")
		if len(e.Problems) > n {
			msg += fmt.Sprintf("; and %d more", len(e.Problems)-n)
		}
	}
	return msg
}

// Hint tells the operator what to do.
func (e *CorruptError) Hint() string {
	return "the copy is damaged or cut short; take a new one with SQLite's backup API (sqlite3 DB '.backup FILE', or VACUUM INTO), never by copying the live file"
}

// ReadHeader reads and checks the header of the file at path: the magic
// string, a valid page size, and a size that holds every page the header
// records (a file cut short fails here).
func ReadHeader(path string) (HeaderInfo, error) { return readHeader(path, true) }

// readHeader is ReadHeader; sized false skips the size checks, for a live
// database, whose header may record pages a writer is adding this instant.
func readHeader(path string, sized bool) (HeaderInfo, error) {
	var h HeaderInfo
	f, err := os.Open(path)
	if err != nil {
		return h, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return h, err
	}
	if !st.Mode().IsRegular() {
		return h, &CorruptError{Path: path, Msg: "not a regular file"}
	}
	buf := make([]byte, 100)
	if _, err := io.ReadFull(f, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return h, &CorruptError{Path: path, Msg: fmt.Sprintf("%d bytes, shorter than the 100-byte header of a SQLite database", st.Size())}
		}
		return h, err
	}
	if string(buf[:16]) != Header {
		return h, &CorruptError{Path: path, Msg: "no \"SQLite format 3\" header: not a SQLite database"}
	}
	h.PageSize = int64(binary.BigEndian.Uint16(buf[16:18]))
	if h.PageSize == 1 {
		h.PageSize = 65536
	}
	if h.PageSize < 512 || h.PageSize&(h.PageSize-1) != 0 {
		return h, &CorruptError{Path: path, Msg: fmt.Sprintf("invalid page size %d in the header", h.PageSize)}
	}
	h.WAL = buf[18] == 2 || buf[19] == 2
	changes := binary.BigEndian.Uint32(buf[24:28])
	if valid := binary.BigEndian.Uint32(buf[92:96]); valid == changes {
		h.Pages = int64(binary.BigEndian.Uint32(buf[28:32]))
	}
	if !sized {
		return h, nil
	}
	if st.Size()%h.PageSize != 0 {
		return h, &CorruptError{Path: path, Msg: fmt.Sprintf("%d bytes, not a whole number of %d-byte pages: cut short", st.Size(), h.PageSize)}
	}
	if h.Pages > 0 && st.Size() < h.Pages*h.PageSize {
		return h, &CorruptError{Path: path, Msg: fmt.Sprintf("%d bytes, but its header records %d pages of %d bytes (%d bytes): cut short",
			st.Size(), h.Pages, h.PageSize, h.Pages*h.PageSize)}
	}
	return h, nil
}

// Check verifies a database file that nothing is writing (a copy, a
// backup): its header, then PRAGMA integrity_check, on the file opened
// read-only and immutable, so that nothing is created or changed beside
// it. A -wal or -journal beside it means the file alone is not the
// whole database: Check fails then.
func Check(ctx context.Context, path string) error {
	h, err := ReadHeader(path)
	if err != nil {
		return err
	}
	for _, side := range []string{"-wal", "-journal"} {
		if st, err := os.Stat(path + side); err == nil && st.Size() > 0 {
			return &CorruptError{Path: path, Msg: fmt.Sprintf("a non-empty %s lies beside it: the file alone is not the whole database (copied while in use?)", path+side)}
		}
	}
	_ = h
	db, err := open(path, "mode=ro&immutable=1")
	if err != nil {
		return err
	}
	defer db.Close()
	return integrity(ctx, db, path)
}

// integrity runs PRAGMA integrity_check: "ok", or the problems found.
// querier is a *sql.DB or an open *sql.Tx (Digest checks inside the
// transaction it reads in).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func integrity(ctx context.Context, db querier, path string) error {
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return &CorruptError{Path: path, Msg: "PRAGMA integrity_check failed: " + err.Error()}
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return &CorruptError{Path: path, Msg: "PRAGMA integrity_check failed: " + err.Error()}
		}
		lines = append(lines, s)
	}
	if err := rows.Err(); err != nil {
		return &CorruptError{Path: path, Msg: "PRAGMA integrity_check failed: " + err.Error()}
	}
	if len(lines) == 1 && lines[0] == "ok" {
		return nil
	}
	return &CorruptError{Path: path, Msg: "PRAGMA integrity_check found problems", Problems: lines}
}
