package recovery

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

// linkOnPath returns the first symbolic link among the path elements a
// tree component's restore would create or write through: its {name}
// element and every element below it down to the component itself (the
// layout's fixed parent is the host's). A restore never writes through
// such a link (it could lead into another instance, or out), and never
// calls a component behind one present. It returns "" when there is none.
func linkOnPath(c instance.Component, name string) (string, error) {
	pt, elem, _, err := kind.LocatePath(c, name)
	if err != nil {
		return "", err
	}
	p := filepath.Join(pt.Parent, elem)
	elems := []string{}
	if pt.Rest != "" {
		elems = strings.Split(pt.Rest, string(filepath.Separator))
	}
	for i := 0; ; i++ {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("inspect %s: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			return fmt.Sprintf("%s is a symbolic link (to %s)", p, target), nil
		}
		if i == len(elems) {
			return "", nil
		}
		p = filepath.Join(p, elems[i])
	}
}

// birthTime is when path was created, when its filesystem records it.
func birthTime(path string) (time.Time, bool) {
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &sx); err != nil || sx.Mask&unix.STATX_BTIME == 0 {
		return time.Time{}, false
	}
	return time.Unix(sx.Btime.Sec, int64(sx.Btime.Nsec)), true
}
