package softdelete

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// TrashDir is the quarantine directory created in each component's parent.
const TrashDir = ".fleetsafe-trash"

type hasher struct{ hash.Hash }

func newHasher() *hasher                       { return &hasher{sha256.New()} }
func (h *hasher) hex() string                  { return hex.EncodeToString(h.Sum(nil)) }
func teeHash(r io.Reader, h *hasher) io.Reader { return io.TeeReader(r, h) }
func drain(r io.Reader, h *hasher) error {
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

// quarantineTarget is where a component goes: a hidden trash directory in
// its own parent (same filesystem, so the rename is atomic), or a renamed
// database.
func quarantineTarget(typ, locator, id string) string {
	if typ == instance.TypePostgreSQL {
		short := id
		if i := strings.LastIndex(id, "-"); i >= 0 {
			short = id[i+1:]
		}
		name := "fstrash_" + short + "_" + locator
		if len(name) > 63 {
			name = name[:63]
		}
		return name
	}
	return filepath.Join(filepath.Dir(locator), TrashDir, id, filepath.Base(locator))
}

// quarantine performs every move of a tombstone that is not done yet.
func quarantine(ctx context.Context, req Request, t *Tombstone) error {
	if _, err := moveAll(ctx, req, t); err != nil {
		return err
	}
	t.State = StateQuarantined
	return t.write()
}

// moveAll performs the moves of a tombstone in order, skipping those
// already done, and returns how many are done when it stops.
func moveAll(ctx context.Context, req Request, t *Tombstone) (int, error) {
	for i, m := range t.Components {
		var err error
		if m.Type == instance.TypePostgreSQL {
			err = moveDatabase(ctx, req.Options.PG, m.From, m.To, false)
		} else {
			err = movePath(m.From, m.To)
		}
		if err != nil {
			return i, fmt.Errorf("quarantine component %s: %w", m.Component, err)
		}
		req.step("quarantine:" + m.Component)
	}
	return len(t.Components), nil
}

// moveAllBack undoes the moves of a tombstone, last first; moves not done
// (or already undone) are skipped.
func moveAllBack(ctx context.Context, req Request, t *Tombstone) error {
	var errs []error
	for i := len(t.Components) - 1; i >= 0; i-- {
		m := t.Components[i]
		var err error
		if m.Type == instance.TypePostgreSQL {
			err = moveDatabase(ctx, req.Options.PG, m.To, m.From, true)
		} else {
			err = movePathBack(m.To, m.From)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("move component %s back: %w", m.Component, err))
			continue
		}
		if m.Type != instance.TypePostgreSQL {
			// The trash directory of this deletion, now empty, goes;
			// the trash itself too when nothing else is in it (through
			// the parent's os.Root: never through a link).
			if root, err := os.OpenRoot(filepath.Dir(m.From)); err == nil {
				if rel, err := filepath.Rel(filepath.Dir(m.From), filepath.Dir(m.To)); err == nil && filepath.IsLocal(rel) {
					_ = root.Remove(rel)
					_ = root.Remove(filepath.Dir(rel))
				}
				root.Close()
			}
		}
	}
	return errors.Join(errs...)
}

// movePath renames from to to inside from's parent directory (quarantine).
func movePath(from, to string) error {
	parent := filepath.Dir(from)
	rel, err := filepath.Rel(parent, to)
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("%s is not inside %s", to, parent)
	}
	return renameIn(parent, filepath.Base(from), rel)
}

// movePathBack renames a quarantined path back to its place (restore).
func movePathBack(quarantined, original string) error {
	parent := filepath.Dir(original)
	rel, err := filepath.Rel(parent, quarantined)
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("%s is not inside %s", quarantined, parent)
	}
	return renameIn(parent, rel, filepath.Base(original))
}

// renameIn renames fromRel to toRel inside parent through os.Root, so that
// neither side can leave it. A rename already done is skipped.
func renameIn(parent, fromRel, toRel string) error {
	root, err := os.OpenRoot(parent)
	if err != nil {
		return fmt.Errorf("open %s: %w", parent, err)
	}
	defer root.Close()
	from, to := filepath.Join(parent, fromRel), filepath.Join(parent, toRel)
	_, ferr := root.Lstat(fromRel)
	_, terr := root.Lstat(toRel)
	switch {
	case errors.Is(ferr, fs.ErrNotExist) && terr == nil:
		return nil // already moved
	case errors.Is(ferr, fs.ErrNotExist):
		return fmt.Errorf("%s is gone and not at %s either", from, to)
	case ferr != nil:
		return ferr
	case terr == nil:
		return fmt.Errorf("both %s and %s exist; resolve by hand", from, to)
	}
	if err := root.MkdirAll(filepath.Dir(toRel), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(to), err)
	}
	if err := root.Rename(fromRel, toRel); err != nil {
		if errors.Is(err, syscall.EXDEV) {
			return fmt.Errorf("cannot rename %s to %s: they are on different filesystems (EXDEV); nothing was moved", from, to)
		}
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	return syncDir(parent)
}

// moveDatabase renames a database; to quarantine it also closes it to
// connections, to restore it reopens it. Done moves are skipped.
func moveDatabase(ctx context.Context, pg pgdump.Conn, from, to string, allow bool) error {
	db, err := pg.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	fromOK, err := databaseExists(ctx, db, from)
	if err != nil {
		return err
	}
	toOK, err := databaseExists(ctx, db, to)
	if err != nil {
		return err
	}
	switch {
	case !fromOK && toOK:
	case !fromOK:
		return fmt.Errorf("database %s is gone and not at %s either", from, to)
	case toOK:
		return fmt.Errorf("both databases %s and %s exist; resolve by hand", from, to)
	default:
		if _, err := db.ExecContext(ctx, "ALTER DATABASE "+pgdump.QuoteIdent(from)+" RENAME TO "+pgdump.QuoteIdent(to)); err != nil {
			return fmt.Errorf("rename database %s to %s: %w", from, to, err)
		}
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS %t", pgdump.QuoteIdent(to), allow)); err != nil {
		return fmt.Errorf("database %s: %w", to, err)
	}
	return nil
}

func databaseExists(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	return n > 0, nil
}
