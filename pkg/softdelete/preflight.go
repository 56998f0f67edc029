package softdelete

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
)

// checkTops compares each component's top entry with what was archived.
func checkTops(col *archive.Collector, name string) error {
	comp, full, now := col.ChangedTop()
	if comp == "" {
		return nil
	}
	return &RefusedError{Name: name, Reason: fmt.Sprintf("component %s changed between archiving and quarantine: %s is now %s", comp, full, now),
		Advice: "find out who changed it, then run again (the archive made meanwhile was removed)"}
}

// sameFilesystem refuses a component that a rename cannot move atomically
// into the trash of its parent: a mount point, or a trash directory that
// is itself on another filesystem.
func sameFilesystem(name, locator string) error {
	parent := filepath.Dir(locator)
	pfi, err := os.Stat(parent)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", parent, err)
	}
	for _, p := range []string{locator, filepath.Join(parent, TrashDir)} {
		fi, err := os.Lstat(p)
		if err != nil {
			continue // absent trash: created on the parent's filesystem
		}
		if devOf(fi) != devOf(pfi) {
			return &RefusedError{Name: name,
				Reason: fmt.Sprintf("%s is on another filesystem than %s (a mount point): it cannot be moved into quarantine by an atomic rename", p, parent),
				Advice: "unmount it, or point the layout at a directory inside it"}
		}
	}
	return nil
}

// devOf is the device of a file's filesystem.
func devOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}
