package kind

import (
	"context"
	"io"
)

// RestoreTester is implemented by a Kind whose backups backup_verify can
// test by restoring them (restore_test): into a scratch place, counted
// table by table, compared with the live component.
type RestoreTester interface {
	// TestFormats lists the backup formats (a layout's backups[].format)
	// that TestRestore takes.
	TestFormats() []string
	// TestRestore restores one backup into a scratch place of its own,
	// removed whatever happens (ctx cancelled too), and returns the row
	// count of every table the backup held, keyed schema.table.
	TestRestore(ctx context.Context, env Env, b Backup) (map[string]int64, error)
	// LiveCounts returns the row count of every table of the live
	// component at locator, keyed as TestRestore's.
	LiveCounts(ctx context.Context, env Env, locator string) (map[string]int64, error)
	// Gone says why the live component at locator can no longer be read
	// when it is because it went away since discovery ("was dropped or
	// renamed", "was closed to connections"), or "" when it is there.
	Gone(ctx context.Context, env Env, locator string) string
}

// Backup is one backup file handed to RestoreTester.TestRestore.
type Backup struct {
	// Format is the backup rule's format, one of TestFormats.
	Format string
	// File is the backup file.
	File string
	// Plain opens the file as a plain SQL script, decompressed and
	// checked by backup_verify's guard as it is read; done reports a
	// refusal of the guard once the reader was consumed. Kinds whose
	// formats are not plain SQL ignore it.
	Plain func() (r io.Reader, done func() error, err error)
	// Scratch, when set, is called with the scratch place's name once it
	// exists (tests check that it is gone afterwards).
	Scratch func(name string)
}
