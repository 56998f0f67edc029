// Package sqlite is the sqlite component kind: one SQLite database file of
// an instance (`type: sqlite`, `path:` a file template), such as Tracim's
// SQLite mode.
//
// It lives in the filesystem like a file component (the path family: its
// template is checked against every other path for overlaps) but is never
// read byte by byte while live: its archive entry is a consistent copy made
// through SQLite's online backup API (pkg/sqlitedb.Copy: one read
// transaction, with what is still in the -wal, made self-contained and
// checked with PRAGMA integrity_check). Soft delete refuses while a
// process holds the database open, and refuses before anything moves when
// it was written after the copy. Quarantine moves the file and its -wal,
// -journal and -shm companions into the deletion's trash directory in
// its parent, like a file; restore from quarantine compares the
// quarantined database with the archived copy (schema and every row)
// first; restore from the archive stages the copy beside its place and
// renames it in, never over a file or a stale companion.
package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/paths"
	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// Type is the sqlite kind's type.
const Type = "sqlite"

// Companions are the files SQLite keeps beside a database while it is
// used: they belong to it and move with it.
var Companions = []string{"-wal", "-journal", "-shm"}

// Kind is the sqlite kind.
type Kind struct{}

var _ kind.Kind = Kind{}

func init() { kind.Register(Kind{}) }

func (Kind) Type() string      { return Type }
func (Kind) Key() string       { return "path" }
func (Kind) Family() string    { return kind.FamilyPath }
func (Kind) Noun() string      { return "SQLite database" }
func (Kind) Shape() kind.Shape { return kind.Dump }
func (Kind) DumpExt() string   { return ".sqlite" }

// CheckTemplate: a path template, as for a file; the name must not end
// like one of SQLite's companion files.
func (Kind) CheckTemplate(raw string) string {
	if why := paths.CheckTemplate(raw); why != "" {
		return why
	}
	for _, c := range Companions {
		if strings.HasSuffix(raw, c) {
			return "a SQLite database's path must not end with " + c + ": SQLite keeps its " + c + " file there"
		}
	}
	return ""
}

func (Kind) CheckName(kind.Component, string) string { return "" }

func (Kind) Locate(c kind.Component, name string) (string, error) {
	_, _, full, err := kind.LocatePath(c, name)
	return full, err
}

// Names lists the regular files that match the template.
func (Kind) Names(_ context.Context, _ *kind.Scan, c kind.Component) ([]string, error) {
	return paths.Names(c, false)
}

// State is a file's; a present file that is not a SQLite database (no
// header) is reported as a problem, so that it is never archived as one.
func (Kind) State(_ context.Context, s *kind.Scan, c kind.Component, name string) (kind.State, error) {
	st, err := paths.State(c, name, s.Sizes, false)
	if err != nil || !st.Present || st.Problem != "" {
		return st, err
	}
	if _, err := sqlitedb.ReadHeader(st.Locator); err != nil {
		var ce *sqlitedb.CorruptError
		if errors.As(err, &ce) {
			st.Problem = fmt.Sprintf("component %s: %s is not a SQLite database (%s)", c.Name, st.Locator, ce.Msg)
			return st, nil
		}
		return st, err
	}
	if s.Sizes && st.SizeBytes != nil {
		for _, suffix := range Companions {
			if fi, err := os.Lstat(st.Locator + suffix); err == nil && fi.Mode().IsRegular() {
				n := *st.SizeBytes + fi.Size()
				st.SizeBytes = &n
			}
		}
	}
	return st, nil
}

// Preflight refuses while a process holds the database or one of its
// companions open: it may write after the copy.
func (Kind) Preflight(_ context.Context, _ kind.Env, st kind.State) (*kind.Refusal, error) {
	users, err := Users(st.Locator)
	if err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, nil
	}
	return &kind.Refusal{
		Reason: fmt.Sprintf("SQLite database %s is open in %d process(es): %s", st.Locator, len(users), strings.Join(users, "; ")),
		Advice: "stop the application using it (its systemd unit, its workers), then run again",
	}, nil
}

// Dump makes a consistent copy of the live database into file through
// the online backup API; Since tells what changed afterwards: the file or
// a companion written, or a process that opened it.
func (Kind) Dump(ctx context.Context, _ kind.Env, t kind.Target, file string) (kind.Since, error) {
	before, err := fingerprint(t.Locator)
	if err != nil {
		return nil, err
	}
	if _, err := sqlitedb.Copy(ctx, t.Locator, file); err != nil {
		return nil, fmt.Errorf("copy SQLite database %s: %w", t.Locator, err)
	}
	// The copy itself opened the database read-write, and SQLite
	// checkpoints the -wal into the file when the last connection closes:
	// the files may have changed by the copy's own doing. When they did,
	// a second copy, made now, must hold the same rows as the archived
	// one; any other difference is a write that raced the copy.
	after, err := fingerprint(t.Locator)
	if err != nil {
		return nil, err
	}
	var during []string
	if changed := before.changes(after, t.Locator); len(changed) > 0 {
		same, err := sameContent(ctx, t.Locator, file)
		if err != nil {
			return nil, err
		}
		if !same {
			during = append(changed, fmt.Sprintf("SQLite database %s was written while it was copied", t.Locator))
		}
		if after, err = fingerprint(t.Locator); err != nil {
			return nil, err
		}
	}
	return func(context.Context) ([]string, error) {
		out := append([]string(nil), during...)
		now, err := fingerprint(t.Locator)
		if err != nil {
			return nil, err
		}
		out = append(out, after.changes(now, t.Locator)...)
		users, err := Users(t.Locator)
		if err != nil {
			return nil, err
		}
		if len(users) > 0 {
			out = append(out, fmt.Sprintf("SQLite database %s was opened after it was copied: %s", t.Locator, strings.Join(users, "; ")))
		}
		return out, nil
	}, nil
}

// VerifyDump checks an archived copy: written to a temporary file, then
// its header, size and PRAGMA integrity_check.
func (Kind) VerifyDump(r io.Reader) (kind.DumpSummary, error) {
	f, err := os.CreateTemp("", "fleetsafe-sqlite-check-*.sqlite")
	if err != nil {
		return kind.DumpSummary{}, err
	}
	defer os.Remove(f.Name())
	_, cerr := io.Copy(f, r)
	if err := errors.Join(cerr, f.Close()); err != nil {
		return kind.DumpSummary{}, fmt.Errorf("read SQLite copy: %w", err)
	}
	h, err := sqlitedb.ReadHeader(f.Name())
	if err != nil {
		return kind.DumpSummary{}, err
	}
	if err := sqlitedb.Check(context.Background(), f.Name()); err != nil {
		return kind.DumpSummary{}, err
	}
	tables, err := tableCount(f.Name())
	if err != nil {
		return kind.DumpSummary{}, err
	}
	return kind.DumpSummary{Entries: tables, DataBlocks: int(h.Pages)}, nil
}

// QuarantineSource is the database file; its companions move with it.
func (Kind) QuarantineSource(st kind.State) (string, bool) { return st.Locator, true }
func (Kind) MoveLocator(m kind.Move) string                { return m.From }

// QuarantineTarget is in the trash directory of the file's parent.
func (Kind) QuarantineTarget(source, id string) string { return paths.TrashTarget(source, id) }

// TrashNames: the database and whichever companions are in the trash.
func (Kind) TrashNames(m kind.Move) []string {
	out := []string{filepath.Base(m.To)}
	for _, c := range Companions {
		out = append(out, filepath.Base(m.To)+c)
	}
	return out
}

// Quarantine moves the database first, then its companions: a crash in
// between never leaves the database in place without its -wal (a re-run
// finishes what is left; each move is skipped when done).
func (Kind) Quarantine(_ context.Context, _ kind.Env, m kind.Move) error {
	// The database's own move is checked first: when it cannot be made
	// (both sides present), no companion leaves its database.
	_, ferr := os.Lstat(m.From)
	_, terr := os.Lstat(m.To)
	if ferr == nil && terr == nil {
		return fmt.Errorf("both %s and %s exist; resolve by hand", m.From, m.To)
	}
	if err := paths.MovePath(m.From, m.To); err != nil {
		return err
	}
	for _, c := range Companions {
		if err := moveIfThere(m.From+c, m.To+c); err != nil {
			return err
		}
	}
	return nil
}

// Unquarantine moves the companions back first, then the database: the
// database is in place only with its -wal beside it.
func (Kind) Unquarantine(_ context.Context, _ kind.Env, m kind.Move) error {
	for _, c := range Companions {
		if _, err := os.Lstat(m.From + c); err == nil {
			if _, err := os.Lstat(m.To + c); err == nil {
				return fmt.Errorf("both %s and %s exist; resolve by hand", m.From+c, m.To+c)
			}
		}
	}
	for _, c := range Companions {
		if err := moveBackIfThere(m.To+c, m.From+c); err != nil {
			return err
		}
	}
	return paths.MovePathBack(m.To, m.From)
}

// moveIfThere quarantines a companion when it exists and is not moved yet.
func moveIfThere(from, to string) error {
	if _, err := os.Lstat(from); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return paths.MovePath(from, to)
}

func moveBackIfThere(quarantined, original string) error {
	if _, err := os.Lstat(quarantined); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return paths.MovePathBack(quarantined, original)
}

func (Kind) Tidy(m kind.Move) { paths.TidyTrash(m) }

// Held reports whether the quarantined database file is there.
func (Kind) Held(_ context.Context, _ kind.Env, m kind.Move) (bool, error) {
	_, err := os.Lstat(m.To)
	return err == nil, nil
}

func (Kind) PurgeLabel() string { return "quarantine" }

func (Kind) PurgeCheck(context.Context, kind.Env, kind.Move) (bool, error) {
	return false, errors.New("a sqlite component is purged with its trash entry")
}

func (Kind) PurgeMark(context.Context, kind.Env, kind.Move) error {
	return errors.New("a sqlite component is purged with its trash entry")
}

func (Kind) PurgeRemove(context.Context, kind.Env, kind.Move) error {
	return errors.New("a sqlite component is purged with its trash entry")
}

func (Kind) PurgeLeft(m kind.Move) string { return m.To }

// Placeholder: never. An empty file is not a SQLite database, and a
// database file an application created meanwhile holds data: restore
// replaces it only with force.
func (Kind) Placeholder(string) string { return "" }

// Staging is a hidden directory beside the database's place.
func (Kind) Staging(t kind.Target) string { return paths.StagingDir(t) }

// Stage copies the verified archived copy into the staging directory, as
// the database's own base name, synced.
func (Kind) Stage(_ context.Context, _ kind.Env, t kind.Target, dump string) (string, error) {
	for _, c := range Companions {
		if _, err := os.Lstat(t.Locator + c); err == nil {
			return "", fmt.Errorf("%s lies where the SQLite database %s is restored: SQLite would take it for the restored database's; move it aside first", t.Locator+c, t.Locator)
		}
	}
	top := paths.StagingDir(t)
	if err := os.MkdirAll(filepath.Dir(top), 0o755); err != nil {
		return "", err
	}
	if err := os.Mkdir(top, 0o700); err != nil {
		return "", fmt.Errorf("create staging directory: %w", err)
	}
	dst := filepath.Join(top, filepath.Base(t.Locator))
	if err := copyFile(dump, dst, filepath.Dir(t.Locator)); err != nil {
		_ = paths.RemoveStaging(top)
		return "", fmt.Errorf("stage SQLite database %s: %w (staging directory %s removed)", t.Locator, err, top)
	}
	return top, nil
}

// RestoredMode is the mode of a database restored from an archive.
const RestoredMode = 0o640

// copyFile copies src to the new file dst, synced, with mode RestoredMode
// and the owner and group of the directory it goes to: the archived copy
// does not record the deleted file's own (the application's user usually
// owns its data directory; RESTORE.md and the docs say so).
func copyFile(src, dst, parent string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, RestoredMode)
	if err != nil {
		return err
	}
	_, cerr := io.Copy(out, in)
	var oerr error
	if fi, err := os.Stat(parent); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			oerr = out.Chown(int(st.Uid), int(st.Gid))
		}
	}
	merr := out.Chmod(RestoredMode)
	serr := out.Sync()
	return errors.Join(cerr, oerr, merr, serr, out.Close())
}

// PutInPlace renames the staged database in, never over anything.
func (Kind) PutInPlace(_ context.Context, _ kind.Env, t kind.Target, staged string) error {
	return paths.RenameStaged(staged, t.Locator)
}

func (Kind) DropStaging(_ context.Context, _ kind.Env, staged string, _ bool) error {
	return paths.RemoveStaging(staged)
}

// CleanStaging removes the staging directory a killed restore left.
func (Kind) CleanStaging(_ context.Context, _ kind.Env, t kind.Target) (bool, error) {
	top := paths.StagingDir(t)
	if _, err := os.Lstat(top); err != nil {
		return false, nil
	}
	if err := paths.RemoveStaging(top); err != nil {
		return false, fmt.Errorf("remove staging leftover %s: %w", top, err)
	}
	return true, nil
}

// sameContent reports whether the live database at db holds what the
// archived copy at file holds (Digest of a fresh consistent copy).
func sameContent(ctx context.Context, db, file string) (bool, error) {
	work, err := os.MkdirTemp(filepath.Dir(file), ".sqlite-recheck-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(work)
	again := filepath.Join(work, "again.sqlite")
	if _, err := sqlitedb.Copy(ctx, db, again); err != nil {
		return false, fmt.Errorf("copy SQLite database %s again: %w", db, err)
	}
	a, err := Digest(ctx, file)
	if err != nil {
		return false, err
	}
	b, err := Digest(ctx, again)
	if err != nil {
		return false, err
	}
	return a == b, nil
}
