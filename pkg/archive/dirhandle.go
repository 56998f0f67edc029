package archive

import (
	"os"
	"path/filepath"
)

// dirHandle keeps the directory of the last entry reached open, so that
// entries taken in walk order (files of one directory one after the
// other) cost one openat or fstatat each, not one per path component:
// an os.Root resolves a deep path by opening every directory on it, and
// that was most of the time of a soft delete of many small files.
//
// The directory is opened through the component's os.Root, so nothing
// outside it is ever reached; an entry is then looked up by its base
// name only, without following a final link. A directory swapped after
// it was opened is not followed either: the entries are read from the
// one opened, and the late-change checks (stamps, inode numbers) judge
// what was read.
//
// A dirHandle is not safe for concurrent use: each goroutine holds its own.
type dirHandle struct {
	root *os.Root
	dir  string
	sub  *os.Root
}

// at returns the directory of rel (under root) and rel's base name.
func (d *dirHandle) at(root *os.Root, rel string) (*os.Root, string, error) {
	dir, base := filepath.Split(rel)
	dir = filepath.Clean(dir)
	if dir == "." {
		return root, base, nil
	}
	if d.sub != nil && d.root == root && d.dir == dir {
		return d.sub, base, nil
	}
	d.close()
	sub, err := root.OpenRoot(dir)
	if err != nil {
		return nil, "", err
	}
	d.root, d.dir, d.sub = root, dir, sub
	return sub, base, nil
}

func (d *dirHandle) open(root *os.Root, rel string) (*os.File, error) {
	r, base, err := d.at(root, rel)
	if err != nil {
		return nil, err
	}
	return r.Open(base)
}

func (d *dirHandle) openFile(root *os.Root, rel string, flag int) (*os.File, error) {
	r, base, err := d.at(root, rel)
	if err != nil {
		return nil, err
	}
	return r.OpenFile(base, flag, 0)
}

func (d *dirHandle) lstat(root *os.Root, rel string) (os.FileInfo, error) {
	r, base, err := d.at(root, rel)
	if err != nil {
		return nil, err
	}
	return r.Lstat(base)
}

func (d *dirHandle) readlink(root *os.Root, rel string) (string, error) {
	r, base, err := d.at(root, rel)
	if err != nil {
		return "", err
	}
	return r.Readlink(base)
}

// close releases the open directory; the handle stays usable.
func (d *dirHandle) close() {
	if d.sub != nil {
		d.sub.Close()
	}
	d.root, d.dir, d.sub = nil, "", nil
}
