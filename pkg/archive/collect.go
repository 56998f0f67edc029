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
	"os/user"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

// source is one filesystem entry to archive, reached through the os.Root of
// its component's parent directory.
type source struct {
	entry FileEntry
	root  *os.Root
	rel   string      // path under root
	mode  fs.FileMode // type and permission bits
	// seen is the entry's stat at collection time, compared again right
	// before quarantine and once more inside it: a late write is caught.
	seen stamp
}

// stamp is what a re-stat compares: a write, a truncation, a chmod or a
// replacement changes one of these.
type stamp struct {
	size         int64
	mtime, ctime int64 // nanoseconds
	ino          uint64
}

func stampOf(fi fs.FileInfo) stamp {
	s := stamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ctime = st.Ctim.Nano()
		s.ino = st.Ino
	}
	return s
}

// sourceInfo presents a source to archive/tar without keeping the whole
// stat result of every file in memory: Sys returns a *tar.Header carrying
// owners (and, for a hard link, its target), which tar.FileInfoHeader uses.
type sourceInfo struct{ s *source }

func (i sourceInfo) Name() string       { return path.Base(i.s.entry.Name()) }
func (i sourceInfo) Mode() fs.FileMode  { return i.s.mode }
func (i sourceInfo) ModTime() time.Time { return i.s.entry.MTime }
func (i sourceInfo) IsDir() bool        { return i.s.mode.IsDir() }
func (i sourceInfo) Size() int64 {
	if i.s.entry.Type == "file" {
		return i.s.entry.Size
	}
	return 0
}
func (i sourceInfo) Sys() any {
	e := i.s.entry
	h := &tar.Header{Uid: e.UID, Gid: e.GID, Uname: e.Owner, Gname: e.Group}
	if e.Type == "hardlink" {
		h.Typeflag, h.Linkname = tar.TypeLink, e.Target()
	}
	return h
}

// Collector walks components without following symbolic links.
type Collector struct {
	// roots are the components' parent directories, comps their
	// components' names, in walk order.
	roots []*os.Root
	comps []string
	// spool keeps the records of the entries to archive, in walk order
	// (collect_spool.go); nil when they are only counted (a plan).
	spool *spool
	// batch holds the entries walked since the last flush: at most
	// batchMax are in memory at once.
	batch []*source
	// entries counts every entry, files the regular ones, bytes their
	// sizes.
	entries, files int
	bytes          int64
	names          map[nameKey]string
	mu             sync.Mutex
	// links maps the inode of a file with several names, per component,
	// to its first entry, so that later names in the same component are
	// archived as hard links. A name in another component is archived as
	// a regular file: restore rebuilds components one by one.
	links map[linkKey]string
	// firstName maps such an inode to its first entry in any component.
	firstName map[fileID]string
	// tops records what each component's top entry was when archived, so
	// that a swap before quarantine is caught.
	tops map[string]fileID
	// topPaths is where each component's top entry was walked.
	topPaths map[string]string
	// accept lists the losses the operator accepted (AcceptLosses).
	accept map[string]bool
	// findings are what must be named before anything moves: mount
	// points, special files, metadata an archive would drop.
	// (findings_log.go: spooled, each path and kind once.)
	findings findingLog
	// losses are the accepted findings, recorded in the manifest.
	losses findingLog
	// mounts lists the mount points of the host (mountinfo), nil when
	// unreadable.
	mounts []string
	// linkCounts counts, for every regular file with several names, the
	// names seen inside the instance (findOutsideLinks).
	linkCounts map[fileID]*linkCount
	// dh is the walk's open directory (dirHandle).
	dh dirHandle
	// HashSmall hashes files up to inlineHashMax during the walk (a soft
	// delete; a plan in check mode reads no content).
	HashSmall bool
	// While a component is walked (deferring), the inspections of its
	// files and directories wait in pending and findings in order, so
	// that they are recorded in walk order once the inspections, run on
	// every core, are done (inspectPending).
	deferring bool
	pending   []*pending
	order     []deferred
}

// pending is one entry whose metadata is still to inspect.
type pending struct {
	s     *source
	hash  bool
	found []Finding
	err   error
}

// deferred is a finding of the walk or an inspection, in walk order.
type deferred struct {
	f *Finding
	p *pending
}

// batchMax is how many walked entries wait, in memory, for their
// inspection and their record (flush).
const batchMax = 4096

// flush inspects the entries walked since the last flush and records
// them in the spool, in walk order.
func (c *Collector) flush() error {
	defer func() { c.batch = c.batch[:0] }()
	if err := c.inspectPending(); err != nil {
		return err
	}
	if c.spool == nil {
		return nil
	}
	var rec []byte
	for _, s := range c.batch {
		rec = encodeRecord(rec[:0], s, len(c.roots)-1)
		if err := c.spool.add(rec); err != nil {
			return err
		}
	}
	return nil
}

// inspectPending runs the queued inspections on every core, then records
// their findings and the walk's in walk order; the first error in walk
// order is returned, as one pass would.
func (c *Collector) inspectPending() error {
	defer func() {
		// Cleared, not only cut: the findings of the last batch (words and
		// paths) would otherwise stay reachable until the next one.
		clear(c.pending)
		clear(c.order)
		c.pending, c.order = c.pending[:0], c.order[:0]
	}()
	workers := max(1, min(runtime.GOMAXPROCS(0), len(c.pending)/64))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var in inspector
			defer in.dh.close()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(c.pending) {
					return
				}
				p := c.pending[i]
				var sum *string
				if p.hash {
					sum = &p.s.entry.SHA256
				}
				in.found = nil
				p.err = in.inspectMeta(p.s.entry.Component, p.s.root, p.s.rel, filepath.Join(p.s.root.Name(), p.s.rel), sum)
				p.found = in.found
			}
		})
	}
	wg.Wait()
	for _, d := range c.order {
		if d.f != nil {
			c.record(*d.f)
			continue
		}
		if d.p.err != nil {
			return d.p.err
		}
		for _, f := range d.p.found {
			c.record(f)
		}
	}
	return nil
}

type linkKey struct {
	id        fileID
	component string
}

// fileID identifies a file on its filesystem.
type fileID struct {
	dev, ino uint64
	mode     fs.FileMode // type bits
}

func idOf(fi fs.FileInfo) fileID {
	id := fileID{mode: fi.Mode().Type()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id
}

func NewCollector(accept []string) *Collector {
	c := &Collector{names: map[nameKey]string{}, links: map[linkKey]string{}, firstName: map[fileID]string{},
		tops: map[string]fileID{}, topPaths: map[string]string{}, accept: map[string]bool{}, linkCounts: map[fileID]*linkCount{}}
	for _, a := range accept {
		c.accept[a] = true
	}
	c.mounts, _ = mountPoints()
	return c
}

// KeepRecords makes the collector keep its records (a soft delete; a
// plan only counts), spilling into a file that create makes once they
// outgrow spoolMemMax.
func (c *Collector) KeepRecords(create func() (*os.File, error)) {
	c.spool = &spool{create: create}
}

func (c *Collector) Close() {
	c.dh.close()
	c.findings.close()
	c.losses.close()
	if c.spool != nil {
		c.spool.close()
	}
	for _, r := range c.roots {
		r.Close()
	}
}

// nameKey is a user ("u") or group ("g") id, looked up once.
type nameKey struct {
	kind string
	id   int
}

func (c *Collector) lookupName(kind string, id int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := nameKey{kind, id}
	if n, ok := c.names[key]; ok {
		return n
	}
	var n string
	if kind == "u" {
		if u, err := user.LookupId(strconv.Itoa(id)); err == nil {
			n = u.Username
		}
	} else if g, err := user.LookupGroupId(strconv.Itoa(id)); err == nil {
		n = g.Name
	}
	c.names[key] = n
	return n
}

// AddComponent records every entry of a dir or file component.
func (c *Collector) AddComponent(t kind.Target) error {
	c.deferring = true
	err := c.walkComponent(t)
	if err == nil {
		err = c.flush()
	}
	c.deferring = false
	if err != nil {
		c.pending, c.order, c.batch = nil, nil, nil
		return err
	}
	return nil
}

// walkComponent walks one component, at the place its target was
// resolved to, queueing the inspections.
func (c *Collector) walkComponent(t kind.Target) error {
	comp, full := t.Component, t.Locator
	if !filepath.IsAbs(full) {
		return fmt.Errorf("component %s: locator %q is not an absolute path", comp.Name, full)
	}
	parent := filepath.Dir(full)
	root, err := os.OpenRoot(parent)
	if err != nil {
		return fmt.Errorf("open %s: %w", parent, err)
	}
	c.roots = append(c.roots, root)
	c.comps = append(c.comps, comp.Name)
	base := filepath.Base(full)
	prefix := "components/" + comp.Name
	top, err := root.Lstat(base)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", full, err)
	}
	c.tops[comp.Name] = idOf(top)
	c.topPaths[comp.Name] = full
	c.findMounts(comp.Name, full)
	if ShapeOf(comp.Type) == kind.TreeFile {
		return c.add(comp.Name, root, base, prefix+"/"+base, top)
	}
	topDev := idOf(top).dev
	return fs.WalkDir(root.FS(), base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", filepath.Join(parent, p), err)
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("inspect %s: %w", filepath.Join(parent, p), err)
		}
		if idOf(fi).dev != topDev {
			// Another filesystem mounted inside the component: never
			// walked into, never archived as the instance's own (tar
			// --one-file-system).
			c.finding(comp.Name, filepath.Join(parent, p), LossMount, "a mount point (another filesystem)")
			if fi.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(base, p)
		name := prefix
		if rel != "." {
			name = path.Join(prefix, filepath.ToSlash(rel))
		}
		return c.add(comp.Name, root, p, name, fi)
	})
}

func (c *Collector) add(component string, root *os.Root, rel, name string, fi fs.FileInfo) error {
	e := FileEntry{
		Component: component,
		Mode:      uint32(fi.Mode().Perm() | fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)),
		MTime:     fi.ModTime().UTC(),
	}
	e.setExact(name, "")
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st != nil {
		e.UID, e.GID = int(st.Uid), int(st.Gid)
		e.Owner, e.Group = c.lookupName("u", e.UID), c.lookupName("g", e.GID)
	}
	// The full path, for findings only: not built for every entry.
	full := func() string { return filepath.Join(root.Name(), rel) }
	id := idOf(fi)
	if fi.Mode().IsRegular() && st != nil && st.Nlink > 1 {
		lc := c.linkCounts[id]
		if lc == nil {
			lc = &linkCount{nlink: int(st.Nlink), component: component, first: full()}
			c.linkCounts[id] = lc
		}
		lc.inside++
	}
	switch {
	case fi.IsDir():
		e.Type = "dir"
	case fi.Mode().IsRegular() && st != nil && st.Nlink > 1 && c.links[linkKey{id, component}] != "":
		// A second name of a file already archived: a hard link to it.
		e.Type = "hardlink"
		e.setExact(name, c.links[linkKey{id, component}])
	case fi.Mode().IsRegular():
		e.Type = "file"
		e.Size = fi.Size()
		if st != nil && st.Nlink > 1 {
			c.links[linkKey{id, component}] = name
			if first, ok := c.firstName[id]; ok {
				// The same file in another component: stored whole
				// here, so that each component restores alone.
				e.SameFileAs = first
			} else {
				c.firstName[id] = name
			}
		}
	case fi.Mode()&fs.ModeSymlink != 0:
		e.Type = "symlink"
		target, err := c.dh.readlink(root, rel)
		if err != nil {
			return fmt.Errorf("read link %s: %w", rel, err)
		}
		e.setExact(name, target)
	default:
		kind, what := specialKind(fi.Mode())
		c.finding(component, full(), kind, what)
		return nil
	}
	src := &source{entry: e, root: root, rel: rel, mode: fi.Mode(), seen: stampOf(fi)}
	c.batch = append(c.batch, src)
	c.entries++
	c.bytes += e.Size
	if e.Type == "file" {
		c.files++
	}
	if e.Type == "dir" || e.Type == "file" {
		// Its metadata is inspected (and a small file hashed through
		// the same descriptor: one open per file instead of two; large
		// ones are left to hashAll) by the next flush, on every core.
		c.pending = append(c.pending, &pending{s: src, hash: c.HashSmall && e.Type == "file" && e.Size <= inlineHashMax})
		c.order = append(c.order, deferred{p: c.pending[len(c.pending)-1]})
	}
	if len(c.batch) >= batchMax {
		return c.flush()
	}
	return nil
}

// inlineHashMax is the largest file hashed during the walk.
const inlineHashMax = 1 << 20

// HashAll computes the sha256 of every regular file not hashed during the
// walk, on every core.
// Each digest is written into its record in the spool.
func (c *Collector) HashAll() error {
	type job struct {
		s   *source
		off int64
	}
	work := make(chan job)
	errs := make(chan error, 1)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			var dh dirHandle
			defer dh.close()
			for j := range work {
				sum, err := HashFile(&dh, j.s.root, j.s.rel, buf)
				if err == nil {
					err = c.spool.setDigest(j.off, sum)
				}
				if err != nil {
					fail(err)
				}
			}
		})
	}
	err := c.each(func(s *source, off int64) error {
		if s.entry.Type == "file" && s.entry.SHA256 == "" {
			work <- job{s, off}
		}
		return nil
	})
	close(work)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// HashFile returns the sha256 of a file, opened through dh (nil: a
// handle of its own).
func HashFile(dh *dirHandle, root *os.Root, rel string, buf []byte) (string, error) {
	if dh == nil {
		dh = &dirHandle{}
		defer dh.close()
	}
	f, err := dh.open(root, rel)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", filepath.Join(root.Name(), rel), err)
	}
	defer f.Close()
	sum, err := hashOpen(f, buf)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", filepath.Join(root.Name(), rel), err)
	}
	return sum, nil
}

// hashOpen returns the sha256 of what is left to read of f.
func hashOpen(f *os.File, buf []byte) (string, error) {
	h := sha256.New()
	// Hide os.File's WriteTo, which would allocate a buffer per file.
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ChangedTop compares each component's top entry, where it was walked,
// with what was archived: it returns the first that changed, where, and
// what it is now ("gone", "a different file"…); "" when none did.
func (c *Collector) ChangedTop() (comp, full, now string) {
	for _, name := range c.comps {
		want, full := c.tops[name], c.topPaths[name]
		fi, err := os.Lstat(full)
		if err != nil || idOf(fi) != want {
			now := "gone"
			if err == nil {
				now = "a different " + Describe(fi.Mode())
			}
			return name, full, now
		}
	}
	return "", "", ""
}

// Describe names a file mode's type in words.
func Describe(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "file"
	}
	return "special file"
}

// ChangedSince re-stats every collected entry and names each that is no
// longer what was collected: size, mtime, ctime or inode differ, or it is
// gone. With moved (component name to where quarantine put it; nil: in
// place), entries are looked for inside quarantine; the top entry of each
// component is then not judged by its ctime, which the rename itself
// updates.
func (c *Collector) ChangedSince(moved map[string]string) []string {
	var out []string
	// The rename of a component's top entry updates its inode's ctime:
	// every name of that inode (a hard link from another component) is
	// then not judged by its ctime either.
	renamed := map[fileID]bool{}
	for comp := range moved {
		if id, ok := c.tops[comp]; ok {
			renamed[id] = true
		}
	}
	// The records read back a window at a time, each window in
	// contiguous chunks on every core, merged in walk order: the same
	// list as one pass would give, one lstat per entry.
	const most = 20
	dhs := make([]dirHandle, runtime.GOMAXPROCS(0))
	defer func() {
		for i := range dhs {
			dhs[i].close()
		}
	}()
	window := make([]*source, 0, changedWindow)
	check := func() bool {
		workers := max(1, min(len(dhs), len(window)/1024))
		parts := make([][]string, workers)
		var wg sync.WaitGroup
		for w := range workers {
			lo, hi := w*len(window)/workers, (w+1)*len(window)/workers
			wg.Go(func() {
				for _, s := range window[lo:hi] {
					if msg := s.changed(&dhs[w], moved, renamed); msg != "" {
						parts[w] = append(parts[w], msg)
						if len(parts[w]) >= most {
							return
						}
					}
				}
			})
		}
		wg.Wait()
		window = window[:0]
		for _, p := range parts {
			out = append(out, p...)
		}
		return len(out) < most
	}
	errEnough := errors.New("enough")
	err := c.each(func(s *source, _ int64) error {
		window = append(window, s)
		if len(window) == cap(window) && !check() {
			return errEnough
		}
		return nil
	})
	switch {
	case err == nil:
		check()
	case err != errEnough:
		// Unreadable records: nothing may move on a list not checked.
		out = append(out, err.Error())
	}
	if len(out) >= most {
		return append(out[:most:most], "and maybe more")
	}
	return out
}

// changedWindow is how many records changedSince holds at once.
const changedWindow = 8192

// changed re-stats one collected entry (inside quarantine when moved is
// set) and says how it differs from its collection, "" when it does not.
func (s *source) changed(dh *dirHandle, moved map[string]string, renamed map[fileID]bool) string {
	rel, shown := s.rel, filepath.Join(s.root.Name(), s.rel)
	top := !strings.ContainsRune(s.rel, filepath.Separator)
	if moved != nil {
		to, ok := moved[s.entry.Component]
		if !ok {
			return ""
		}
		qrel, err := filepath.Rel(s.root.Name(), filepath.Dir(to))
		if err != nil || !filepath.IsLocal(qrel) {
			return ""
		}
		rel = filepath.Join(qrel, s.rel)
		shown = filepath.Join(s.root.Name(), rel)
	}
	fi, err := dh.lstat(s.root, rel)
	if err != nil {
		return fmt.Sprintf("%s is gone", shown)
	}
	now := stampOf(fi)
	var what []string
	if now.ino != s.seen.ino {
		what = append(what, "replaced by another file")
	}
	if now.size != s.seen.size && !fi.IsDir() {
		what = append(what, fmt.Sprintf("size %d, now %d", s.seen.size, now.size))
	}
	if now.mtime != s.seen.mtime {
		what = append(what, "modified (mtime)")
	}
	if now.ctime != s.seen.ctime && !(moved != nil && (top || renamed[idOf(fi)])) && len(what) == 0 {
		what = append(what, "metadata changed (ctime)")
	}
	if len(what) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s", shown, strings.Join(what, ", "))
}

// hashInline stores in sum (when not nil) the sha256 of f, a regular file
// just inspected. Anything else there now (replaced meanwhile) is left to
// HashAll and to the late-change checks.
func (in *inspector) hashInline(f *os.File, full string, sum *string) error {
	if sum == nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if in.buf == nil {
		in.buf = make([]byte, 256<<10)
	}
	s, err := hashOpen(f, in.buf)
	if err != nil {
		return fmt.Errorf("read %s: %w", full, err)
	}
	*sum = s
	return nil
}
