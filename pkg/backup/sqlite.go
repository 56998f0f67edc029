package backup

import (
	"bufio"
	"context"
	"io"
	"os"

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
func checkSQLite(f *os.File, br *bufio.Reader, _ io.Reader, res *fileResult) error {
	if kind := sniff(peek(br, 4)); kind == "gzip" || kind == "zstd" {
		res.kind = kind
		return &notPlainSQLite{kind: kind}
	}
	return sqlitedb.Check(context.Background(), f.Name())
}

type notPlainSQLite struct{ kind string }

func (e *notPlainSQLite) Error() string {
	return "a " + e.kind + " stream, not a SQLite database file (format sqlite reads the database file itself; decompress it first)"
}
