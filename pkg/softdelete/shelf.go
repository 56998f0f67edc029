package softdelete

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Names of an instance's objects in its folder of the store
// (archive_dir/<name>/ for the file store).
const (
	archiveExt   = ".tar.zst"
	tombstoneExt = ".tombstone.json"
)

// openStore returns the store a request carries, or opens archiveDir.
func openStore(ctx context.Context, st store.Store, archiveDir string) (store.Store, error) {
	if st != nil {
		return st, nil
	}
	if !filepath.IsAbs(archiveDir) {
		return nil, fmt.Errorf("archive_dir %q is not an absolute path", archiveDir)
	}
	return store.Open(ctx, archiveDir)
}

// shelf is one instance's folder of a store: its archives, their sidecars
// and its tombstones, filed by instance name (of every app).
type shelf struct {
	st   store.Store
	name string
}

func (s shelf) key(file string) string {
	if s.name == "" || s.name == "." {
		return file // a store that is the instance's folder itself
	}
	return s.name + "/" + file
}

// loc names one of the shelf's objects for people (a path for the file
// store).
func (s shelf) loc(file string) string { return s.st.Location(s.key(file)) }

// where names the shelf itself.
func (s shelf) where() string { return s.st.Location(s.name) }

// lock takes the instance's lock in the store; a second run refuses at
// once.
func (s shelf) lock(ctx context.Context) (func(), error) {
	unlock, err := s.st.Lock(ctx, s.name)
	if errors.Is(err, store.ErrLocked) {
		return nil, &RefusedError{Name: s.name, Reason: "another fleetsafe run holds the lock of this instance",
			Advice: "wait for it to finish, then run again"}
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", s.name, err)
	}
	return unlock, nil
}

// prepare readies the shelf before its lock (a directory store creates
// the folder); undo runs while the lock is held and leaves nothing a
// refused run created.
func (s shelf) prepare() (undo func(), err error) {
	if l, ok := s.st.(store.Local); ok {
		return l.Prepare(s.name)
	}
	return func() {}, nil
}

// tidy removes what a killed run left (temporary files, work
// directories) where the store has such things. The caller holds the
// lock.
func (s shelf) tidy() {
	if l, ok := s.st.(interface{ Tidy(folder string) }); ok {
		l.Tidy(s.name) // store.Local, and object stores (incomplete uploads)
	}
}

// workDir makes a scratch directory for dumps: in the shelf when the store
// is a directory of this host (its own filesystem; tidy removes it after
// a crash), else in the system's temporary directory.
func (s shelf) workDir(prefix string) (string, error) {
	if l, ok := s.st.(store.Local); ok {
		return l.WorkDir(s.name, prefix)
	}
	d, err := os.MkdirTemp("", "fleetsafe-work-"+prefix)
	if err != nil {
		return "", fmt.Errorf("create work directory: %w", err)
	}
	return d, nil
}

// exists reports whether the store holds anything for the instance (a
// directory store: whether its folder is there).
func (s shelf) exists(ctx context.Context) (bool, error) {
	objs, err := s.st.List(ctx, s.name+"/")
	if err != nil {
		return false, err
	}
	if len(objs) > 0 {
		return true, nil
	}
	if l, ok := s.st.(store.Local); ok {
		folders, err := l.Folders()
		if err != nil {
			return false, err
		}
		for _, f := range folders {
			if f.Name == s.name {
				return true, nil
			}
		}
	}
	return false, nil
}

// files lists the names of the shelf's objects (directly in it) that end
// with ext, sorted.
func (s shelf) files(ctx context.Context, ext string) ([]string, error) {
	objs, err := s.st.List(ctx, s.name+"/")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, s.name+"/")
		if !strings.Contains(rest, "/") && strings.HasSuffix(rest, ext) {
			out = append(out, rest)
		}
	}
	sort.Strings(out)
	return out, nil
}

// archives lists the shelf's archive file names, oldest first (names
// start with a UTC timestamp).
func (s shelf) archives(ctx context.Context) ([]string, error) { return s.files(ctx, archiveExt) }

// tombstones reads the shelf's tombstones, oldest first.
func (s shelf) tombstones(ctx context.Context) ([]*Tombstone, error) {
	names, err := s.files(ctx, tombstoneExt)
	if err != nil {
		return nil, err
	}
	var out []*Tombstone
	for _, n := range names {
		t, err := readTombstone(ctx, s.st, s.key(n))
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// newTombstone binds a tombstone to its place in the shelf.
func (s shelf) newTombstone(t *Tombstone) *Tombstone {
	t.st, t.key = s.st, s.key(t.ID+tombstoneExt)
	t.Path = s.st.Location(t.key)
	return t
}

// removeArchive removes an archive, its sidecar and its RESTORE.md, in
// the reverse order of the archive writer (RESTORE.md first, the archive last),
// when they are there: a crash in between leaves an archive without its
// runbook, never a runbook without its archive.
func (s shelf) removeArchive(ctx context.Context, file string) error {
	if file == "" {
		return nil
	}
	var errs []error
	for _, k := range []string{s.key(file + archive.RunbookSuffix), s.key(file + sidecar.Suffix), s.key(file)} {
		if err := s.st.Remove(ctx, k); err != nil && !errors.Is(err, store.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// archiveFile is the file name, in its shelf, of the archive a tombstone
// records ("" for none).
func (t *Tombstone) archiveFile() string {
	if t.ArchivePath == "" {
		return ""
	}
	return path.Base(filepath.ToSlash(t.ArchivePath))
}

// readTombstone reads the tombstone under key. In a store that keeps
// versions its history is checked (checkHistory), and a newer version
// that is no tombstone at all hides nothing: the newest that is one is
// read, and the one passed over named.
func readTombstone(ctx context.Context, st store.Store, key string) (*Tombstone, error) {
	loc := st.Location(key)
	rc, err := st.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read tombstone: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read tombstone %s: %w", loc, err)
	}
	t, perr := parseTombstone(data, loc)
	t, err = checkHistory(ctx, st, key, loc, t, perr)
	if err != nil {
		return nil, err
	}
	t.Path, t.st, t.key = loc, st, key
	return t, nil
}

// parseTombstone decodes a tombstone read from loc.
func parseTombstone(data []byte, loc string) (*Tombstone, error) {
	t := &Tombstone{}
	if err := json.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("tombstone %s: %w", loc, err)
	}
	if t.ID == "" || t.Instance == "" {
		return nil, fmt.Errorf("tombstone %s: missing id or instance", loc)
	}
	return t, nil
}

// archRef is an archive where it lives.
type archRef struct {
	st  store.Store
	key string
}

func (a archRef) loc() string { return a.st.Location(a.key) }

func (a archRef) open(ctx context.Context) (io.ReadCloser, error) { return a.st.Open(ctx, a.key) }

// folders lists the instance folders of a store.
func folders(ctx context.Context, st store.Store) ([]store.Folder, error) {
	return store.ListFolders(ctx, st)
}

// explicitArchive resolves the archive a restore names: an absolute path
// (inside a directory store: its key there; elsewhere: a file of its own
// directory), or a key of the store (a bare file name is taken in the
// instance's folder).
func (r *restorer) explicitArchive() (archRef, error) {
	a := r.req.Archive
	if filepath.IsAbs(a) {
		a = filepath.Clean(a)
		if dir, ok := archive.StoreDir(r.sh.st); ok {
			if rel, err := filepath.Rel(dir, a); err == nil && filepath.IsLocal(rel) && store.CheckKey(filepath.ToSlash(rel)) == nil {
				return archRef{st: r.sh.st, key: filepath.ToSlash(rel)}, nil
			}
		}
		st, err := store.NewFile(filepath.Dir(a))
		return archRef{st: st, key: filepath.Base(a)}, err
	}
	key := a
	if !strings.Contains(a, "/") {
		key = r.sh.key(a)
	}
	if err := store.CheckKey(key); err != nil {
		return archRef{}, fmt.Errorf("archive %q: %w", r.req.Archive, err)
	}
	return archRef{st: r.sh.st, key: key}, nil
}

// spoolFile makes the unlinked file the collector's records spill into:
// in a work directory of the shelf (on the archive directory's filesystem
// for a directory store), removed at once, with the instance's folder
// when it was made for it, so that nothing is left behind even by a
// crash or a refusal.
func (s shelf) spoolFile() (*os.File, error) {
	folder, made := "", false
	if _, ok := s.st.(store.Local); ok {
		folder = s.st.Location(s.name)
		if _, err := os.Lstat(folder); errors.Is(err, fs.ErrNotExist) {
			made = true
		}
	}
	dir, err := s.workDir("files-")
	if err != nil {
		return nil, err
	}
	defer func() {
		os.RemoveAll(dir)
		if made {
			os.Remove(folder) // only when empty
		}
	}()
	f, err := os.CreateTemp(dir, "files-*.spool")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
