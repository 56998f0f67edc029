package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Local is implemented by a store that keeps its objects in a directory of
// this host (File). Soft delete, restore and purge use it, when their
// store has it, for what only a directory has: folders that exist apart
// from their objects (and may be links), a scratch directory on the
// store's own filesystem, and the leftovers of a run killed mid-way. A
// store without it (object storage) has none of these.
type Local interface {
	Store
	// Folders lists the folders at the top of the store (one per
	// instance), hidden names left out, each with what stands there when
	// it is not a real directory.
	Folders() ([]Folder, error)
	// Prepare creates folder (and the store's directory) when missing,
	// before its lock is taken. undo, called while the lock is held,
	// removes the lock and each directory Prepare created when folder
	// holds nothing else: a refused run leaves nothing behind.
	Prepare(folder string) (undo func(), err error)
	// Tidy removes the temporary objects and scratch directories a
	// killed run left in folder. The caller holds folder's lock.
	Tidy(folder string)
	// WorkDir creates a new scratch directory in folder, hidden from
	// every listing, whose name starts with ".work-"+prefix; Tidy removes
	// it when the run that made it dies first.
	WorkDir(folder, prefix string) (string, error)
}

var _ Local = (*File)(nil)

// Folder is one top-level entry of a directory store.
type Folder struct {
	Name string
	// NotDir says what stands under Name when it is not a directory (a
	// symbolic link and its target, a file); "" for a directory.
	NotDir string
	// Link is set when that is a symbolic link.
	Link bool
}

// Folders lists the directory's top-level entries.
func (s *File) Folders() ([]Folder, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.dir, err)
	}
	var out []Folder
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f := Folder{Name: e.Name()}
		switch {
		case e.IsDir():
		case e.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(filepath.Join(s.dir, e.Name()))
			f.NotDir, f.Link = fmt.Sprintf("a symbolic link to %q", target), true
		default:
			f.NotDir = fmt.Sprintf("not a directory (%s)", e.Type())
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Prepare creates folder's directory, 0700, and the store's when missing.
func (s *File) Prepare(folder string) (func(), error) {
	if err := CheckKey(folder); err != nil {
		return nil, err
	}
	dir := s.Location(folder)
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		created = append([]string{d}, created...)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create archive directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("archive directory: %w", err)
	}
	return func() {
		if len(created) == 0 {
			return
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 1 || entries[0].Name() != ".lock" {
			return
		}
		if os.Remove(filepath.Join(dir, ".lock")) != nil {
			return
		}
		for i := len(created) - 1; i >= 0; i-- {
			if os.Remove(created[i]) != nil {
				return
			}
		}
	}, nil
}

// Tidy removes ".work-*" directories and hidden temporary files (".*.tmp"
// of earlier versions, ".*.tmp-*" of this store) in folder.
func (s *File) Tidy(folder string) {
	if CheckKey(folder) != nil {
		return
	}
	dir := s.Location(folder)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".work-") || (strings.HasPrefix(n, ".") && (strings.HasSuffix(n, ".tmp") || strings.Contains(n, ".tmp-"))) {
			os.RemoveAll(filepath.Join(dir, n))
		}
	}
}

// WorkDir creates a scratch directory in folder.
func (s *File) WorkDir(folder, prefix string) (string, error) {
	if err := CheckKey(folder); err != nil {
		return "", err
	}
	dir := s.Location(folder)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create work directory: %w", err)
	}
	w, err := os.MkdirTemp(dir, ".work-"+prefix)
	if err != nil {
		return "", fmt.Errorf("create work directory: %w", err)
	}
	return w, nil
}

// ListFolders lists the instance folders of a store: a directory store's
// top-level entries (links and files marked as such), or the first
// elements of the keys of any other store.
func ListFolders(ctx context.Context, st Store) ([]Folder, error) {
	if l, ok := st.(Local); ok {
		return l.Folders()
	}
	objs, err := st.List(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []Folder
	seen := map[string]bool{}
	for _, o := range objs {
		name, _, ok := strings.Cut(o.Key, "/")
		if ok && !seen[name] {
			seen[name] = true
			out = append(out, Folder{Name: name})
		}
	}
	return out, nil
}

// LockInspector is implemented by a store that can tell who holds a lock
// without taking it (taking it, even shared, would make a run starting at
// that instant refuse).
type LockInspector interface {
	// LockHolder returns the process holding the lock named name, and
	// where that lock is, when one holds it.
	LockHolder(name string) (pid int, where string, held bool)
}

var _ LockInspector = (*File)(nil)

// LockHolder reads /proc/locks for the flock on <name>/.lock.
func (s *File) LockHolder(name string) (int, string, bool) {
	if CheckKey(name) != nil {
		return 0, "", false
	}
	where := s.Location(name + "/.lock")
	var st syscall.Stat_t
	if err := syscall.Stat(where, &st); err != nil {
		return 0, "", false
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0, "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 12172 fe:00:9996671 0 EOF
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" || fields[1] != "FLOCK" {
			continue
		}
		if fields[5] == want {
			pid, _ := strconv.Atoi(fields[4])
			return pid, where, true
		}
	}
	return 0, "", false
}
