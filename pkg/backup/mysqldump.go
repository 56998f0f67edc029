package backup

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// FormatMySQLDump is a plain mariadb-dump (or mysqldump) file of one
// database, compressed with gzip or zstd or not (told by magic bytes).
const FormatMySQLDump = "mysql_dump"

func init() { registerFormat(FormatMySQLDump, checkMySQLDump) }

// checkMySQLDump reads a mysql_dump to its end: mariadb.VerifyDump's
// structure (every table's data section whole, the closing line last),
// inside its gzip or zstd stream when compressed.
func checkMySQLDump(_ *os.File, br *bufio.Reader, src io.Reader, res *fileResult) error {
	kind := sniff(peek(br, 4))
	if kind == "gzip" || kind == "zstd" {
		res.kind = kind + " " + FormatMySQLDump
	} else {
		kind = ""
	}
	return decompress(kind, src, func(r io.Reader) error {
		sum, err := mariadb.VerifyDump(r)
		if err != nil {
			return err
		}
		res.database = sum.Database
		res.data = dataNone
		if sum.Inserts > 0 {
			res.data = dataSome
		}
		return nil
	})
}

// openMaybeCompressed opens a file whose content may be gzip or zstd
// compressed; close releases it.
func openMaybeCompressed(path string) (r io.Reader, close func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	switch sniff(peek(br, 4)) {
	case "gzip":
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return gz, func() { f.Close() }, nil
	case "zstd":
		zr, err := newZstd(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return zr, func() { zr.Close(); f.Close() }, nil
	}
	return br, func() { f.Close() }, nil
}

// RestoreTestMySQLDump restores a mysql_dump into a scratch database
// (mariadb.ScratchRestore: guarded, as a user with privileges there only)
// and compares its tables and row counts with the live database live
// ("" when there is none to compare with). res names the component, rule
// and file of the check.
func RestoreTestMySQLDump(ctx context.Context, c mariadb.Conn, res CheckResult, live string) CheckResult {
	res.Check = CheckRestore
	fail := func(format string, args ...any) CheckResult {
		return bad(res, StatusFailed, &RestoreError{Path: res.File, Msg: fmt.Sprintf(format, args...)})
	}
	r, closeFile, err := openMaybeCompressed(res.File)
	if err != nil {
		return fail("%v", err)
	}
	defer closeFile()
	sc, err := mariadb.ScratchRestore(ctx, c, res.File, r)
	if sc != nil && testHookScratch != nil {
		testHookScratch(sc.Database)
	}
	if err != nil {
		var unsafe *mariadb.UnsafeDumpError
		if errors.As(err, &unsafe) {
			return bad(res, StatusFailed, unsafe)
		}
		return fail("%v", err)
	}
	got := sc.Counts
	if live == "" {
		return ok(res, fmt.Sprintf("restored %d tables; no live database to compare with", len(got)))
	}
	admin, err := c.Open(ctx, "")
	if err != nil {
		return fail("%v", err)
	}
	defer admin.Close()
	if found, err := mariadb.Exists(ctx, admin, live); err != nil {
		return fail("%v", err)
	} else if !found {
		return bad(res, StatusWarning, &GoneError{Path: res.File, Database: live, Why: "was dropped or renamed"})
	}
	want, err := mariadb.TableCounts(ctx, admin, live)
	if err != nil {
		return fail("count rows of live database %s: %v", live, err)
	}
	return compareRestored(res, got, want)
}
