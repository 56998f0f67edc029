package mysql

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// TestFormats: a mariadb-dump, plain, gzip or zstd.
func (Kind) TestFormats() []string { return []string{"mysql_dump"} }

// TestRestore loads a backup into a scratch database as a user with
// privileges there only, through mariadb.GuardDump (mariadb.ScratchRestore),
// counts its rows and drops both whatever happens.
func (Kind) TestRestore(ctx context.Context, env kind.Env, b kind.Backup) (map[string]int64, error) {
	if b.Format != "mysql_dump" {
		return nil, fmt.Errorf("format %s cannot be test-restored into MariaDB", b.Format)
	}
	r, done, err := openMaybeCompressed(b.File)
	if err != nil {
		return nil, err
	}
	defer done()
	sc, err := mariadb.ScratchRestore(ctx, Conn(env), b.File, r)
	if sc != nil && b.Scratch != nil {
		b.Scratch(sc.Database)
	}
	if err != nil {
		return nil, err
	}
	return sc.Counts, nil
}

// LiveCounts counts the rows of every table of the live database.
func (Kind) LiveCounts(ctx context.Context, env kind.Env, locator string) (map[string]int64, error) {
	db, err := admin(ctx, env)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return mariadb.TableCounts(ctx, db, locator)
}

// Gone says "was dropped or renamed" when the live database no longer
// exists.
func (Kind) Gone(ctx context.Context, env kind.Env, locator string) string {
	db, err := admin(ctx, env)
	if err != nil {
		return ""
	}
	defer db.Close()
	if ok, err := mariadb.Exists(ctx, db, locator); err == nil && !ok {
		return "was dropped or renamed"
	}
	return ""
}

// openMaybeCompressed opens a file whose content may be gzip or zstd
// compressed (told by its magic bytes).
func openMaybeCompressed(path string) (io.Reader, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 1<<16)
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return gz, func() { f.Close() }, nil
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(256<<20), zstd.WithDecoderMaxMemory(512<<20))
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return zr, func() { zr.Close(); f.Close() }, nil
	}
	return br, func() { f.Close() }, nil
}
