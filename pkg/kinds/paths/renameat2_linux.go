package paths

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

const renameNoReplace = 0x1 // RENAME_NOREPLACE

// renameNoReplaceIn renames from to to, both relative to the directory
// dir, and fails with EEXIST when to exists (even an empty directory,
// which rename(2) would replace).
func renameNoReplaceIn(dir *os.File, from, to string) error {
	if sysRenameat2 < 0 {
		if _, err := os.Lstat(dir.Name() + "/" + to); err == nil {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: syscall.EEXIST}
		}
		return syscall.Renameat(int(dir.Fd()), from, int(dir.Fd()), to)
	}
	f, err := syscall.BytePtrFromString(from)
	if err != nil {
		return err
	}
	t, err := syscall.BytePtrFromString(to)
	if err != nil {
		return err
	}
	_, _, errno := syscall.Syscall6(uintptr(sysRenameat2), dir.Fd(), uintptr(unsafe.Pointer(f)), dir.Fd(), uintptr(unsafe.Pointer(t)), renameNoReplace, 0)
	if errno != 0 {
		if errors.Is(errno, syscall.ENOSYS) || errors.Is(errno, syscall.EINVAL) {
			if _, err := os.Lstat(dir.Name() + "/" + to); err == nil {
				return &os.LinkError{Op: "rename", Old: from, New: to, Err: syscall.EEXIST}
			}
			return syscall.Renameat(int(dir.Fd()), from, int(dir.Fd()), to)
		}
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: errno}
	}
	return nil
}
