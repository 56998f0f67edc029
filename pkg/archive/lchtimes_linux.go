package archive

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"
)

const atSymlinkNofollow = 0x100

// lchtimes sets the times of a symbolic link itself (os.Root.Chtimes
// follows links). The link is named relative to its parent directory,
// opened through the root, so the call stays confined.
func lchtimes(root *os.Root, rel string, mtime time.Time) error {
	dir, err := root.Open(filepath.Dir(rel))
	if err != nil {
		return err
	}
	defer dir.Close()
	name, err := syscall.BytePtrFromString(filepath.Base(rel))
	if err != nil {
		return err
	}
	ts := [2]syscall.Timespec{syscall.NsecToTimespec(mtime.UnixNano()), syscall.NsecToTimespec(mtime.UnixNano())}
	_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, dir.Fd(), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(&ts[0])), atSymlinkNofollow, 0, 0)
	if errno != 0 {
		return fmt.Errorf("set times of link %s: %w", rel, errno)
	}
	return nil
}
