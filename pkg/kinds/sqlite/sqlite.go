// Package sqlite is the sqlite component kind: one SQLite database file
// (Tracim's SQLite mode), named by a path template. It is archived as a
// consistent copy taken through SQLite's online backup API (never a plain
// copy of the live file, never without what its -wal holds), checked with
// PRAGMA integrity_check; quarantined and restored as a file together
// with its -journal, -wal and -shm; compared before it is moved back by a
// logical digest of its schema and rows against the archived copy.
package sqlite

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/paths"
	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// Type is the component type of the kind.
const Type = "sqlite"

// Kind is the sqlite kind.
type Kind struct{}

var _ kind.Kind = Kind{}

func init() { kind.Register(Kind{}) }

func (Kind) Type() string                            { return Type }
func (Kind) Key() string                             { return "path" }
func (Kind) Family() string                          { return kind.FamilyPath }
func (Kind) Noun() string                            { return "SQLite database" }
func (Kind) CheckName(kind.Component, string) string { return "" }

// CheckTemplate: the rules of a path component, and a file name that
// does not end like a companion SQLite keeps beside a database.
func (Kind) CheckTemplate(raw string) string {
	if why := paths.CheckTemplate(raw); why != "" {
		return why
	}
	for _, suf := range sqlitedb.Companions {
		if strings.HasSuffix(raw, suf) {
			return "a SQLite database's path must not end with " + suf + ": that is the name of a file SQLite keeps beside a database"
		}
	}
	return ""
}

func (Kind) Locate(c kind.Component, name string) (string, error) {
	_, _, full, err := kind.LocatePath(c, name)
	return full, err
}

// Names: the regular files the template matches.
func (Kind) Names(_ context.Context, _ *kind.Scan, c kind.Component) ([]string, error) {
	names, err := paths.Names(c, false)
	if err != nil {
		return nil, err
	}
	// A companion is never an instance of its own.
	out := names[:0]
	for _, n := range names {
		if !companionName(n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func companionName(n string) bool {
	for _, suf := range sqlitedb.Companions {
		if strings.HasSuffix(n, suf) {
			return true
		}
	}
	return false
}

// State: a regular file, its size with its -wal's.
func (Kind) State(_ context.Context, s *kind.Scan, c kind.Component, name string) (kind.State, error) {
	st, err := paths.State(c, name, s.Sizes, false)
	if err != nil || !st.Present || st.Problem != "" || st.SizeBytes == nil {
		return st, err
	}
	if fi, err := os.Lstat(st.Locator + "-wal"); err == nil && fi.Mode().IsRegular() {
		size := *st.SizeBytes + fi.Size()
		st.SizeBytes = &size
	}
	return st, nil
}

// Preflight refuses while a process holds the database or a companion
// open, naming it.
func (Kind) Preflight(_ context.Context, _ kind.Env, st kind.State) (*kind.Refusal, error) {
	if !st.Present {
		return nil, nil
	}
	h, err := sqlitedb.Holders(st.Locator)
	if err != nil {
		return nil, err
	}
	if len(h) == 0 {
		return nil, nil
	}
	e := &sqlitedb.InUseError{Path: st.Locator, Holders: h}
	return &kind.Refusal{Reason: e.Error(), Advice: e.Hint()}, nil
}

func (Kind) Shape() kind.Shape { return kind.Dump }
func (Kind) DumpExt() string   { return ".sqlite" }

// Dump copies the live database through the online backup API into file
// (with what its -wal holds), checked with PRAGMA integrity_check.
// Since reports a write after the copy: the file or its -wal changed
// size or modification time, or a process opened it.
func (Kind) Dump(ctx context.Context, _ kind.Env, t kind.Target, file string) (kind.Since, error) {
	before := stamp(t.Locator)
	if _, err := sqlitedb.Copy(ctx, t.Locator, file); err != nil {
		return nil, err
	}
	return func(context.Context) ([]string, error) {
		var out []string
		if after := stamp(t.Locator); after != before {
			out = append(out, fmt.Sprintf("%s was written after its copy was taken (%s, then %s)", t.Locator, before, after))
		}
		h, err := sqlitedb.Holders(t.Locator)
		if err != nil {
			return out, err
		}
		for _, x := range h {
			out = append(out, x.String())
		}
		return out, nil
	}, nil
}

// stamp describes the size and modification time of a database and its
// -wal.
func stamp(path string) string {
	var b strings.Builder
	for _, suf := range []string{"", "-wal"} {
		if fi, err := os.Lstat(path + suf); err == nil {
			fmt.Fprintf(&b, "%s%s: %d bytes, %s; ", filepath.Base(path), suf, fi.Size(), fi.ModTime().UTC().Format(time.RFC3339Nano))
		}
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// VerifyDump reads the copy to its end into a temporary file and checks
// it (header, whole pages, PRAGMA integrity_check).
func (Kind) VerifyDump(r io.Reader) (kind.DumpSummary, error) {
	f, err := os.CreateTemp("", "fleetsafe-sqlite-verify-*.sqlite")
	if err != nil {
		return kind.DumpSummary{}, err
	}
	defer os.Remove(f.Name())
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return kind.DumpSummary{}, fmt.Errorf("read sqlite copy: %w", err)
	}
	h, err := sqlitedb.ReadHeader(f.Name())
	if err != nil {
		return kind.DumpSummary{}, err
	}
	if err := sqlitedb.Check(context.Background(), f.Name()); err != nil {
		return kind.DumpSummary{}, err
	}
	return kind.DumpSummary{Entries: 1, DataBlocks: int(h.Pages)}, nil
}
