package archive

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mholt/archives"
	"golang.org/x/sys/unix"
)

// ComponentEntries lists the manifest entries of one component.
func ComponentEntries(m *Manifest, comp string) []FileEntry {
	var out []FileEntry
	for _, e := range m.Files {
		if e.Component == comp {
			out = append(out, e)
		}
	}
	return out
}

// CompareTree checks a tree under root against manifest entries: the same
// names and no others, kinds, sizes, link targets, hard links, every
// file's sha256, and with meta also modes, owners (as root) and mtimes.
// It fsyncs every directory when meta is set (the staged tree is about to
// be renamed into place). It returns why it differs, or "".
func CompareTree(root *os.Root, rel func(string) string, base string, entries []FileEntry, meta bool) string {
	return CompareTreeWith(root, rel, base, entries, meta, true)
}

// CompareTreeWith is CompareTree; without content, files are compared by
// size, not read again and hashed, and directories are not synced (the
// caller syncs the filesystem).
func CompareTreeWith(root *os.Root, rel func(string) string, base string, entries []FileEntry, meta, content bool) string {
	return CompareTreeLinks(root, rel, base, entries, meta, content, nil)
}

// LinkCheck judges a regular file's other names: e its entry, full its
// path, fi what Lstat gave; it says why they are not the instance's own,
// or "".
type LinkCheck func(e FileEntry, full string, fi fs.FileInfo) string

// CompareTreeLinks is CompareTreeWith; links, when set, also judges each
// regular file's other names.
func CompareTreeLinks(root *os.Root, rel func(string) string, base string, entries []FileEntry, meta, content bool, links LinkCheck) string {
	var problems []string
	missing := 0
	add := func(format string, args ...any) {
		if len(problems) < 5 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	buf := make([]byte, 256<<10)
	asRoot := os.Geteuid() == 0
	for _, e := range entries {
		p := rel(e.Name())
		fi, err := root.Lstat(p)
		if err != nil {
			missing++
			add("%s is missing", e.Name())
			continue
		}
		want := map[string]fs.FileMode{"dir": fs.ModeDir, "file": 0, "hardlink": 0, "symlink": fs.ModeSymlink}[e.Type]
		if fi.Mode().Type() != want {
			add("%s is a %s, the manifest says %s", e.Name(), Describe(fi.Mode()), e.Type)
			continue
		}
		switch e.Type {
		case "file":
			if fi.Size() != e.Size {
				add("%s has %d bytes, the manifest says %d", e.Name(), fi.Size(), e.Size)
				continue
			}
			if !content {
				break
			}
			sum, err := HashFile(nil, root, p, buf)
			if err != nil || sum != e.SHA256 {
				add("%s has sha256 %s, the manifest says %s", e.Name(), sum, e.SHA256)
				continue
			}
			if links != nil {
				if why := links(e, filepath.Join(root.Name(), p), fi); why != "" {
					add("%s", why)
					continue
				}
			}
		case "symlink":
			if t, err := root.Readlink(p); err != nil || t != e.Target() {
				add("%s links to %q, the manifest says %q", e.Name(), t, e.Target())
				continue
			}
		case "hardlink":
			t, err := root.Lstat(rel(e.Target()))
			if err != nil || !os.SameFile(fi, t) {
				add("%s is not a hard link to %s", e.Name(), e.Target())
				continue
			}
			continue
		case "dir":
			if meta && content {
				if d, err := root.Open(p); err == nil {
					serr := d.Sync()
					d.Close()
					if serr != nil {
						add("sync %s: %v", e.Name(), serr)
					}
				}
			}
		}
		if !meta {
			continue
		}
		if e.Type != "symlink" {
			got := fi.Mode().Perm() | fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
			if uint32(got) != e.Mode {
				add("%s has mode %v, the manifest says %v", e.Name(), got, fs.FileMode(e.Mode))
			}
		}
		if !fi.ModTime().Equal(e.MTime) {
			add("%s has mtime %s, the manifest says %s", e.Name(), fi.ModTime().UTC(), e.MTime.UTC())
		}
		if asRoot {
			if uid, gid, ok := owner(fi); ok && (uid != e.UID || gid != e.GID) {
				add("%s is owned by %d:%d, the manifest says %d:%d", e.Name(), uid, gid, e.UID, e.GID)
			}
		}
	}
	n := 0
	if err := fs.WalkDir(root.FS(), base, func(string, fs.DirEntry, error) error { n++; return nil }); err != nil {
		add("walk: %v", err)
	}
	if present := len(entries) - missing; n != present {
		add("%d entries present, %d expected", n, len(entries))
	}
	if missing > 0 {
		problems = append([]string{fmt.Sprintf("%d of %d entries missing", missing, len(entries))}, problems...)
	}
	return strings.Join(problems, "; ")
}

func ExtractTo(fi archives.FileInfo, dest string) error {
	rc, err := fi.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return fmt.Errorf("write %s: %w", dest, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func HashPath(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WriteEntry writes one entry; with sync, a regular file is synced before
// it is closed, else its writeback is only started (the caller syncs the
// filesystem before the tree is renamed into place).
func WriteEntry(root *os.Root, rel string, hdr *tar.Header, fi archives.FileInfo, sync bool) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		return root.MkdirAll(rel, 0o700)
	case tar.TypeSymlink:
		// The link is restored exactly as it was, whatever its target;
		// nothing is ever written through it.
		if err := root.MkdirAll(filepath.Dir(rel), 0o700); err != nil {
			return err
		}
		return root.Symlink(hdr.Linkname, rel)
	case tar.TypeReg:
		if err := root.MkdirAll(filepath.Dir(rel), 0o700); err != nil {
			return err
		}
		out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		rc, err := fi.Open()
		if err != nil {
			out.Close()
			return err
		}
		defer rc.Close()
		// Blocks of zeros become holes: a sparse file (a VM image, a
		// preallocated database file) does not come back full size.
		sw := &sparseWriter{f: out}
		if _, err := io.CopyBuffer(sw, struct{ io.Reader }{rc}, make([]byte, 256<<10)); err != nil {
			out.Close()
			return err // names the file
		}
		if err := sw.flush(); err != nil {
			out.Close()
			return fmt.Errorf("write %s: %w", filepath.Join(root.Name(), rel), err)
		}
		if err := out.Truncate(sw.off); err != nil {
			out.Close()
			return fmt.Errorf("set the size of %s: %w", filepath.Join(root.Name(), rel), err)
		}
		if !sync {
			// Start the writeback now, so that the disk works while the
			// next entries are read; the caller's syncfs waits for it.
			_ = unix.SyncFileRange(int(out.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
			return out.Close()
		}
		if err := out.Sync(); err != nil {
			out.Close()
			return fmt.Errorf("sync %s: %w", filepath.Join(root.Name(), rel), err)
		}
		return out.Close()
	}
	return fmt.Errorf("entry %s: unsupported type", hdr.Name)
}

// sparseBlock is the unit in which a restored file's zeros become holes.
const sparseBlock = 4096

// sparseWriter writes a file leaving a hole (a seek) for each whole,
// aligned block of zeros, whatever sizes the reader hands over; flush
// writes the last partial block, and the caller truncates the file to off,
// which also gives a file ending in a hole its size.
type sparseWriter struct {
	f   *os.File
	off int64  // bytes accepted so far
	buf []byte // the current block, not yet written
}

func (w *sparseWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(w.buf) == 0 && len(p) >= sparseBlock {
			if err := w.block(p[:sparseBlock]); err != nil {
				return n - len(p), err
			}
			p = p[sparseBlock:]
			continue
		}
		k := min(len(p), sparseBlock-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == sparseBlock {
			if err := w.block(w.buf); err != nil {
				return n - len(p), err
			}
			w.buf = w.buf[:0]
		}
	}
	return n, nil
}

// block writes one whole block, or seeks over it when it is all zeros.
func (w *sparseWriter) block(b []byte) error {
	var err error
	if allZero(b) {
		_, err = w.f.Seek(int64(len(b)), io.SeekCurrent)
	} else {
		_, err = w.f.Write(b)
	}
	w.off += int64(len(b))
	return err
}

// flush writes the last partial block (zeros too: the truncate to off
// would give them anyway).
func (w *sparseWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.f.Write(w.buf)
	w.off += int64(len(w.buf))
	w.buf = w.buf[:0]
	return err
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func ApplyMeta(root *os.Root, rel string, e FileEntry) error {
	if err := root.Lchown(rel, e.UID, e.GID); err != nil && !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("chown %s: %w", rel, err)
	}
	if e.Type == "symlink" {
		return lchtimes(root, rel, e.MTime) // a link has no mode of its own
	}
	if err := root.Chmod(rel, fs.FileMode(e.Mode).Perm()|modeBits(e.Mode)); err != nil {
		return fmt.Errorf("chmod %s: %w", rel, err)
	}
	if err := root.Chtimes(rel, e.MTime, e.MTime); err != nil {
		return fmt.Errorf("set times of %s: %w", rel, err)
	}
	return nil
}

func modeBits(m uint32) fs.FileMode {
	return fs.FileMode(m) & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func owner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
