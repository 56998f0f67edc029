package softdelete

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"unsafe"
)

// The system calls below are not all in package syscall (statx,
// unlinkat with flags); golang.org/x/sys is not a dependency of the
// project, so they are called directly.

const (
	atRemoveDir       = 0x200
	atSymlinkNoFollow = 0x100
	atEmptyPath       = 0x1000
	statxBasicStats   = 0x7ff
	statxMntID        = 0x1000
	statxAttrImmut    = 0x10
	statxAttrAppend   = 0x20
)

func sysStatx() uintptr {
	switch runtime.GOARCH {
	case "arm64", "riscv64", "loong64":
		return 291
	case "386":
		return 383
	default: // amd64
		return 332
	}
}

// statxT is struct statx of linux/stat.h (256 bytes).
type statxT struct {
	Mask           uint32
	Blksize        uint32
	Attributes     uint64
	Nlink          uint32
	UID            uint32
	GID            uint32
	Mode           uint16
	_              uint16
	Ino            uint64
	Size           uint64
	Blocks         uint64
	AttributesMask uint64
	Atime          [16]byte
	Btime          [16]byte
	Ctime          [16]byte
	Mtime          [16]byte
	RdevMajor      uint32
	RdevMinor      uint32
	DevMajor       uint32
	DevMinor       uint32
	MntID          uint64
	_              [104]byte
}

// nodeID is where an inode lives: its device and its mount. Two
// directories of one bind-mounted filesystem share the device but not the
// mount.
type nodeID struct {
	dev   uint64
	mnt   uint64
	hasMn bool
}

func (a nodeID) same(b nodeID) bool {
	if a.dev != b.dev {
		return false
	}
	return !a.hasMn || !b.hasMn || a.mnt == b.mnt
}

type nodeInfo struct {
	id        nodeID
	mode      uint16
	immutable bool // immutable or append-only: cannot be unlinked (or its entries)
}

func (n nodeInfo) isDir() bool     { return n.mode&syscall.S_IFMT == syscall.S_IFDIR }
func (n nodeInfo) isSymlink() bool { return n.mode&syscall.S_IFMT == syscall.S_IFLNK }

// statAt stats name in dirfd without following a final symlink; an empty
// name stats dirfd itself.
func statAt(dirfd int, name string) (nodeInfo, error) {
	var st statxT
	flags := atSymlinkNoFollow
	if name == "" {
		flags |= atEmptyPath
	}
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return nodeInfo{}, err
	}
	_, _, e := syscall.Syscall6(sysStatx(), uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(flags),
		uintptr(statxBasicStats|statxMntID), uintptr(unsafe.Pointer(&st)), 0)
	if e != 0 {
		return nodeInfo{}, e
	}
	n := nodeInfo{
		id:   nodeID{dev: uint64(st.DevMajor)<<32 | uint64(st.DevMinor), mnt: st.MntID, hasMn: st.Mask&statxMntID != 0},
		mode: st.Mode,
	}
	if st.Attributes&st.AttributesMask&(statxAttrImmut|statxAttrAppend) != 0 {
		n.immutable = true
	} else if st.AttributesMask&(statxAttrImmut|statxAttrAppend) == 0 {
		// The filesystem does not report attributes through statx:
		// ask the inode flags of regular files and directories.
		n.immutable = inodeFlagsImmutable(dirfd, name, n)
	}
	return n, nil
}

const (
	fsIocGetFlags = 0x80086601
	fsImmutableFl = 0x10
	fsAppendFl    = 0x20
)

func inodeFlagsImmutable(dirfd int, name string, n nodeInfo) bool {
	typ := n.mode & syscall.S_IFMT
	if typ != syscall.S_IFREG && typ != syscall.S_IFDIR {
		return false
	}
	fd := dirfd
	if name != "" {
		var err error
		fd, err = syscall.Openat(dirfd, name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return false
		}
		defer syscall.Close(fd)
	}
	var flags uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), fsIocGetFlags, uintptr(unsafe.Pointer(&flags))); e != 0 {
		return false
	}
	return flags&(fsImmutableFl|fsAppendFl) != 0
}

func unlinkAt(dirfd int, name string, flags int) error {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return err
	}
	if _, _, e := syscall.Syscall(syscall.SYS_UNLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(flags)); e != 0 {
		return e
	}
	return nil
}

func readlinkAt(dirfd int, name string) string {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return ""
	}
	buf := make([]byte, 4096)
	n, _, e := syscall.Syscall6(syscall.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return ""
	}
	return string(buf[:n])
}

// openDirAt opens name in dirfd as a directory without following a
// symlink; a symlink is a *SymlinkError naming full.
func openDirAt(dirfd int, name, full string) (int, error) {
	fd, err := syscall.Openat(dirfd, name, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err == nil {
		return fd, nil
	}
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
		if n, serr := statAt(dirfd, name); serr == nil && n.isSymlink() {
			return -1, &SymlinkError{Path: full, Target: readlinkAt(dirfd, name)}
		}
		return -1, fmt.Errorf("%s is not a directory: %w", full, err)
	}
	return -1, &os.PathError{Op: "open", Path: full, Err: err}
}

// openDirNoFollow opens an absolute directory path walking from / one
// element at a time, never following a symlink at any level.
func openDirNoFollow(path string) (int, error) {
	if !filepath.IsAbs(path) {
		return -1, fmt.Errorf("%s is not an absolute path", path)
	}
	fd, err := syscall.Open("/", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	cur := "/"
	for _, el := range strings.Split(filepath.Clean(path), "/") {
		if el == "" {
			continue
		}
		cur = filepath.Join(cur, el)
		next, err := openDirAt(fd, el, cur)
		syscall.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// readNames lists the entries of an open directory (without . and ..).
func readNames(fd int, path string) ([]string, error) {
	dup, err := syscall.Dup(fd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	return names, nil
}

// scanTree walks the directory open as fd (at path) without following
// symlinks and reports every entry that sits on another mount than want
// (not descended into) and every immutable or append-only entry.
func scanTree(fd int, path string, want nodeID, mounts, frozen *[]string) error {
	names, err := readNames(fd, path)
	if err != nil {
		return err
	}
	for _, name := range names {
		full := filepath.Join(path, name)
		n, err := statAt(fd, name)
		if err != nil {
			return fmt.Errorf("stat %s: %w", full, err)
		}
		if !n.id.same(want) {
			*mounts = append(*mounts, full)
			continue
		}
		if n.immutable {
			*frozen = append(*frozen, full)
		}
		if !n.isDir() {
			continue
		}
		child, err := openDirAt(fd, name, full)
		if err != nil {
			return err
		}
		err = scanTree(child, full, want, mounts, frozen)
		syscall.Close(child)
		if err != nil {
			return err
		}
	}
	return nil
}

// removeTree removes name (in the directory open as parent, at path)
// and everything under it, like `rm -r --one-file-system` without
// following links: a directory on another mount than want stops the
// removal with a *MountCrossingError and is never entered.
func removeTree(parent int, name, path string, want nodeID) error {
	n, err := statAt(parent, name)
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if !n.id.same(want) {
		return &MountCrossingError{Root: path, Mounts: []string{path}}
	}
	if !n.isDir() {
		if err := unlinkAt(parent, name, 0); err != nil && !errors.Is(err, syscall.ENOENT) {
			return &os.PathError{Op: "remove", Path: path, Err: err}
		}
		return nil
	}
	fd, err := openDirAt(parent, name, path)
	if err != nil {
		return err
	}
	cur, err := statAt(fd, "")
	if err == nil && !cur.id.same(want) {
		err = &MountCrossingError{Root: path, Mounts: []string{path}}
	}
	if err == nil {
		var names []string
		names, err = readNames(fd, path)
		for _, child := range names {
			if err = removeTree(fd, child, filepath.Join(path, child), want); err != nil {
				break
			}
		}
	}
	syscall.Close(fd)
	if err != nil {
		return err
	}
	if err := unlinkAt(parent, name, atRemoveDir); err != nil && !errors.Is(err, syscall.ENOENT) {
		return &os.PathError{Op: "remove", Path: path, Err: err}
	}
	return nil
}

func renameAt(dirfd int, from, to string) error {
	return syscall.Renameat(dirfd, from, dirfd, to)
}

func fsyncFd(fd int) error { return syscall.Fsync(fd) }

func closeFd(fd int) {
	if fd >= 0 {
		syscall.Close(fd)
	}
}

func isNotExist(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, os.ErrNotExist)
}
