package backup

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// FormatSQLite is a SQLite database file, as SQLite's backup API (or
// VACUUM INTO) writes it: checked by its header, its size against the
// page count the header records, and PRAGMA integrity_check.
const FormatSQLite = "sqlite"

func init() { registerFormat(FormatSQLite, checkSQLite) }

// checkSQLite checks the backup file itself (read-only, immutable: nothing
// is created beside it). Compressed SQLite backups are not read: the
// format is the database file.
//
// An object (f nil: a rule in object storage) is copied to a file of a
// private temporary directory first (SQLite reads a file by pages, not a
// stream, and opens it by name), through src so that its checksum is
// still taken; the directory is removed after the check.
func checkSQLite(f *os.File, br *bufio.Reader, src io.Reader, res *fileResult) error {
	if kind := sniff(peek(br, 4)); kind == "gzip" || kind == "zstd" {
		res.kind = kind
		return &notPlainSQLite{kind: kind}
	}
	if f == nil {
		dir, err := os.MkdirTemp("", ".fleetsafe-s3-sqlite-*")
		if err != nil {
			return fmt.Errorf("scratch copy of the object: %w", err)
		}
		defer os.RemoveAll(dir)
		tmp, err := os.OpenFile(filepath.Join(dir, "backup.db"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("scratch copy of the object: %w", err)
		}
		_, err = io.Copy(tmp, src)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("scratch copy of the object: %w", err)
		}
		return sqlitedb.Check(context.Background(), tmp.Name())
	}
	return sqlitedb.Check(context.Background(), f.Name())
}

type notPlainSQLite struct{ kind string }

func (e *notPlainSQLite) Error() string {
	return "a " + e.kind + " stream, not a SQLite database file (format sqlite reads the database file itself; decompress it first)"
}
