package softdelete

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
)

// StatePurging is the tombstone state written before purge removes
// anything (the journal of a purge): the quarantine of such a tombstone is
// being destroyed and is never a source for a restore. Its directories are
// renamed to .fleetsafe-trash/<id>.purging and its databases to
// fspurge_… before the first removal; a purge run finishes them.
const StatePurging = "purging"

// PurgingSuffix ends the name of a quarantine directory being purged.
const PurgingSuffix = ".purging"

// SymlinkError is a trash or quarantine path reached through a symlink:
// fleetsafe never follows one there.
type SymlinkError struct {
	Path   string
	Target string
}

func (e *SymlinkError) Error() string {
	return fmt.Sprintf("%s is a symbolic link (to %q); fleetsafe never reaches a quarantine through a link", e.Path, e.Target)
}

// Hint tells the operator what to do.
func (e *SymlinkError) Hint() string {
	return "find out who replaced it by a link; purge only removes a quarantine reached by its real path"
}

// MountCrossingError is a quarantined tree with other mounts inside it
// (a bind mount of another directory, even of the same device): removing
// it would delete through them.
type MountCrossingError struct {
	Root   string
	Mounts []string
}

func (e *MountCrossingError) Error() string {
	return fmt.Sprintf("%s holds mount point(s) %s; purge never crosses into another mount", e.Root, strings.Join(e.Mounts, ", "))
}

// Hint tells the operator what to do.
func (e *MountCrossingError) Hint() string {
	return "unmount them (umount " + strings.Join(e.Mounts, " ") + "), then run the purge again"
}

// FrozenError is a quarantined tree with immutable or append-only
// entries (chattr +i / +a): they cannot be removed, so nothing is.
type FrozenError struct {
	Root  string
	Paths []string
}

func (e *FrozenError) Error() string {
	return fmt.Sprintf("%s holds immutable or append-only entries: %s", e.Root, strings.Join(e.Paths, ", "))
}

// Hint tells the operator what to do.
func (e *FrozenError) Hint() string {
	return "check why they are protected; if they may go, run chattr -i -a on them, then run the purge again"
}

// trashEntry is the quarantine directory .fleetsafe-trash/<id> of one
// deletion in one parent directory, opened without following any link.
type trashEntry struct {
	parent string
	id     string
	fd     int    // the .fleetsafe-trash directory; -1 when it is gone
	dev    nodeID // its mount
	// names present: id and/or id.purging
	intact, purging bool
}

func (e *trashEntry) trash() string       { return filepath.Join(e.parent, TrashDir) }
func (e *trashEntry) intactPath() string  { return filepath.Join(e.trash(), e.id) }
func (e *trashEntry) purgingPath() string { return filepath.Join(e.trash(), e.id+PurgingSuffix) }
func (e *trashEntry) gone() bool          { return !e.intact && !e.purging }
func (e *trashEntry) close()              { closeFd(e.fd); e.fd = -1 }

// trashParent returns the parent directory of a quarantine path
// <parent>/.fleetsafe-trash/<id>/<base>.
func trashParent(to, id string) (string, error) {
	entry := filepath.Dir(filepath.Clean(to))
	if !filepath.IsAbs(to) || filepath.Base(entry) != id || filepath.Base(filepath.Dir(entry)) != TrashDir {
		return "", fmt.Errorf("%s is not a quarantine path of deletion %s", to, id)
	}
	return filepath.Dir(filepath.Dir(entry)), nil
}

// openTrash opens the trash of one deletion in parent and checks it
// (no link at any level, one mount from the parent down, nothing frozen)
// before anything is removed.
func openTrash(parent, id string) (*trashEntry, error) {
	e := &trashEntry{parent: parent, id: id, fd: -1}
	pfd, err := openDirNoFollow(parent)
	if isNotExist(err) {
		return e, nil
	}
	if err != nil {
		return nil, err
	}
	defer closeFd(pfd)
	pinfo, err := statAt(pfd, "")
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", parent, err)
	}
	tfd, err := openDirAt(pfd, TrashDir, e.trash())
	if isNotExist(err) {
		return e, nil
	}
	if err != nil {
		return nil, err
	}
	e.fd = tfd
	tinfo, err := statAt(tfd, "")
	if err != nil {
		e.close()
		return nil, fmt.Errorf("stat %s: %w", e.trash(), err)
	}
	if !tinfo.id.same(pinfo.id) {
		e.close()
		return nil, &MountCrossingError{Root: e.trash(), Mounts: []string{e.trash()}}
	}
	e.dev = tinfo.id
	var frozen []string
	if tinfo.immutable {
		frozen = append(frozen, e.trash())
	}
	var mounts []string
	for _, name := range []string{id, id + PurgingSuffix} {
		full := filepath.Join(e.trash(), name)
		n, err := statAt(tfd, name)
		if isNotExist(err) {
			continue
		}
		if err != nil {
			e.close()
			return nil, fmt.Errorf("stat %s: %w", full, err)
		}
		if n.isSymlink() {
			target := readlinkAt(tfd, name)
			e.close()
			return nil, &SymlinkError{Path: full, Target: target}
		}
		if name == id {
			e.intact = true
		} else {
			e.purging = true
		}
		if !n.id.same(e.dev) {
			mounts = append(mounts, full)
			continue
		}
		if n.immutable {
			frozen = append(frozen, full)
		}
		if n.isDir() {
			fd, err := openDirAt(tfd, name, full)
			if err != nil {
				e.close()
				return nil, err
			}
			err = scanTree(fd, full, e.dev, &mounts, &frozen)
			closeFd(fd)
			if err != nil {
				e.close()
				return nil, err
			}
		}
		// The mount table also names mounts the walk cannot see as
		// such (a file bind-mounted over a file of the tree).
		listed, err := archive.MountsUnder(full)
		if err != nil {
			e.close()
			return nil, err
		}
		mounts = append(mounts, listed...)
		// A bind mount elsewhere that shows this quarantine (another
		// instance's place): removing it would empty that place too.
		elsewhere, err := archive.MountedElsewhere(full)
		if err != nil {
			e.close()
			return nil, err
		}
		for _, mp := range elsewhere {
			mounts = append(mounts, mp+" (a bind mount showing "+full+")")
		}
	}
	if len(mounts) > 0 {
		e.close()
		return nil, &MountCrossingError{Root: e.intactPath(), Mounts: dedupe(mounts)}
	}
	if len(frozen) > 0 {
		e.close()
		return nil, &FrozenError{Root: e.intactPath(), Paths: dedupe(frozen)}
	}
	if e.intact && e.purging {
		e.close()
		return nil, fmt.Errorf("both %s and %s exist; compare and remove one by hand", e.intactPath(), e.purgingPath())
	}
	return e, nil
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// markPurging renames <id> to <id>.purging inside the trash, so that a
// half-removed tree is never taken for an intact quarantine.
func (e *trashEntry) markPurging() error {
	if !e.intact {
		return nil
	}
	if err := renameAt(e.fd, e.id, e.id+PurgingSuffix); err != nil {
		return fmt.Errorf("rename %s to %s: %w", e.intactPath(), e.purgingPath(), err)
	}
	e.intact, e.purging = false, true
	if err := fsyncFd(e.fd); err != nil {
		return fmt.Errorf("sync %s: %w", e.trash(), err)
	}
	return nil
}

// remove removes <id>.purging for good, staying on the trash's mount.
func (e *trashEntry) remove() error {
	if !e.purging {
		return nil
	}
	if err := removeTree(e.fd, e.id+PurgingSuffix, e.purgingPath(), e.dev); err != nil {
		return err
	}
	e.purging = false
	if err := fsyncFd(e.fd); err != nil {
		return fmt.Errorf("sync %s: %w", e.trash(), err)
	}
	return nil
}

// leftIn describes what remains of a partly removed tree.
func leftIn(path string) string {
	files, dirs := 0, 0
	_ = filepath.WalkDir(path, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			dirs++
		} else {
			files++
		}
		return nil
	})
	if files == 0 && dirs == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%s with %d file(s) and %d director(ies)", path, files, dirs)
}
