package paths

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

func (base) QuarantineSource(st kind.State) (string, bool) { return st.Locator, true }
func (base) MoveLocator(m kind.Move) string                { return m.From }

// QuarantineTarget is the trash directory of the deletion in the
// component's own parent (same filesystem, so the rename is atomic).
func (base) QuarantineTarget(source, id string) string { return TrashTarget(source, id) }

// TrashTarget is where a path goes when deletion id quarantines it.
func TrashTarget(source, id string) string {
	return filepath.Join(filepath.Dir(source), kind.TrashDirName, id, filepath.Base(source))
}

func (base) TrashNames(m kind.Move) []string { return []string{filepath.Base(m.To)} }

// Quarantine renames the component into the trash, inside its parent.
func (base) Quarantine(_ context.Context, _ kind.Env, m kind.Move) error {
	return MovePath(m.From, m.To)
}

// Unquarantine renames it back.
func (base) Unquarantine(_ context.Context, _ kind.Env, m kind.Move) error {
	return MovePathBack(m.To, m.From)
}

// Tidy removes the deletion's trash directory, now empty, and the trash
// itself when nothing else is in it (through the parent's os.Root: never
// through a link).
func (base) Tidy(m kind.Move) { TidyTrash(m) }

// TidyTrash is Tidy for any kind quarantined by TrashTarget.
func TidyTrash(m kind.Move) {
	if root, err := os.OpenRoot(filepath.Dir(m.From)); err == nil {
		if rel, err := filepath.Rel(filepath.Dir(m.From), filepath.Dir(m.To)); err == nil && filepath.IsLocal(rel) {
			// The deletion's retention record goes with the last of its
			// quarantined paths (kind.RetentionFile).
			if d, err := root.Open(rel); err == nil {
				names, _ := d.Readdirnames(-1)
				d.Close()
				if len(names) == 1 && names[0] == kind.RetentionFile {
					_ = root.Remove(filepath.Join(rel, kind.RetentionFile))
				}
			}
			_ = root.Remove(rel)
			_ = root.Remove(filepath.Dir(rel))
		}
		root.Close()
	}
}

// Held reports whether the quarantined path is there.
func (base) Held(_ context.Context, _ kind.Env, m kind.Move) (bool, error) {
	_, err := os.Lstat(m.To)
	return err == nil, nil
}

func (b base) CompareQuarantined(context.Context, kind.Env, kind.Move, string) (string, error) {
	return "", fmt.Errorf("a %s component is compared with its archive's tree entries, not with a dump", b.typ)
}

func (base) PurgeLabel() string { return "quarantine" }

func (b base) PurgeCheck(context.Context, kind.Env, kind.Move) (bool, error) {
	return false, fmt.Errorf("a %s component is purged with its trash entry", b.typ)
}

func (b base) PurgeMark(context.Context, kind.Env, kind.Move) error {
	return fmt.Errorf("a %s component is purged with its trash entry", b.typ)
}

func (b base) PurgeRemove(context.Context, kind.Env, kind.Move) error {
	return fmt.Errorf("a %s component is purged with its trash entry", b.typ)
}

func (base) PurgeLeft(m kind.Move) string { return m.To }

// MovePath renames from to to inside from's parent directory (quarantine).
func MovePath(from, to string) error {
	parent := filepath.Dir(from)
	rel, err := filepath.Rel(parent, to)
	if err != nil || !filepath.IsLocal(rel) {
		return fmt.Errorf("%s is not inside %s", to, parent)
	}
	return renameIn(parent, filepath.Base(from), rel)
}

// MovePathBack renames a quarantined path back to its place (restore).
func MovePathBack(quarantined, original string) error {
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
	return SyncDir(parent)
}

// SyncDir fsyncs a directory, so that a rename in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
