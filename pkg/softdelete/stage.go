package softdelete

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/mholt/archives"
	"golang.org/x/sys/unix"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/paths"
)

// StagingPrefix starts the name of the directory in which a component is
// staged, beside its destination, before one rename puts it in place.
const StagingPrefix = paths.StagingPrefix

// cleanStaging removes what a killed restore of this instance left: each
// component's staging place (Kind.CleanStaging). It returns how many.
func cleanStaging(ctx context.Context, l *instance.Layout, name string, opts instance.Options) (int, error) {
	n := 0
	env := opts.Env()
	for _, c := range l.Components {
		t, err := target(l.App, name, c)
		if err != nil {
			return n, err
		}
		k, _ := c.Kind()
		found, err := k.CleanStaging(ctx, env, t)
		if err != nil {
			return n, err
		}
		if found {
			n++
		}
	}
	return n, nil
}

// stageAll extracts every component that comes from an archive into its
// staging place, with its final metadata, and verifies it against the
// manifest; databases are restored into their staging database.
func (r *restorer) stageAll(ctx context.Context, chosen []*pick, manifests map[string]*Manifest) error {
	byArchive := map[string][]*pick{}
	for _, p := range chosen {
		if p.archive != "" {
			byArchive[p.archive] = append(byArchive[p.archive], p)
		}
	}
	if len(byArchive) == 0 {
		return nil
	}
	work, err := r.sh.workDir("restore-")
	if err != nil {
		return err
	}
	r.work = work
	paths := slices.Sorted(func(yield func(string) bool) {
		for k := range byArchive {
			if !yield(k) {
				return
			}
		}
	})
	for _, archive := range paths {
		if err := r.stageArchive(ctx, archive, byArchive[archive], manifests[archive]); err != nil {
			return err
		}
	}
	return nil
}

// staged is one dir or file component being extracted.
type staged struct {
	p    *pick
	root *os.Root
	base string // the component's base name inside the staging directory
}

// rel maps an archive name of the component to its path in the staging
// directory.
func (s *staged) rel(name string) string {
	return entryAt(s.p.comp.Type, s.p.mc.ArchivePath, s.base, name)
}

// entryAt is where the archive entry name of a component of type typ,
// archived under archivePath, is when the component's top entry is at
// top: a file component's one entry (under its archive directory) is top
// itself; a directory component's entries are below top.
func entryAt(typ, archivePath, top, name string) string {
	if shapeOf(typ) == kind.TreeFile || name == archivePath {
		return top
	}
	return filepath.Join(top, filepath.FromSlash(strings.TrimPrefix(name, archivePath+"/")))
}

func (r *restorer) stageArchive(ctx context.Context, archive string, picks []*pick, m *Manifest) error {
	var dirs []*staged
	dumps := map[string]*pick{}
	defer func() {
		for _, s := range dirs {
			s.root.Close()
		}
	}()
	for _, p := range picks {
		if p.k.Shape() == kind.Dump {
			dumps[p.mc.ArchivePath] = p
			continue
		}
		top := p.k.Staging(p.t)
		if _, err := os.Lstat(filepath.Dir(top)); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(top), 0o755); err != nil {
				return fmt.Errorf("component %s: %w", p.comp.Name, err)
			}
			// Kept even if the restore fails: say so.
			r.res.Changed = true
			r.res.note("created the parent directory %s of component %s", filepath.Dir(top), p.comp.Name)
		}
		if err := os.Mkdir(top, 0o700); err != nil {
			return fmt.Errorf("component %s: create staging directory: %w", p.comp.Name, err)
		}
		p.staged = top
		root, err := os.OpenRoot(top)
		if err != nil {
			return err
		}
		dirs = append(dirs, &staged{p: p, root: root, base: filepath.Base(p.locator)})
	}
	find := func(name string) *staged {
		for _, s := range dirs {
			if name == s.p.mc.ArchivePath || strings.HasPrefix(name, s.p.mc.ArchivePath+"/") {
				return s
			}
		}
		return nil
	}
	f, err := openMetered(ctx, PhaseRestore, r.refs[archive])
	if err != nil {
		return err
	}
	defer f.Close()
	err = archiveFormat.Extract(ctx, f, func(ctx context.Context, fi archives.FileInfo) error {
		hdr, _ := fi.Header.(*tar.Header)
		if hdr == nil {
			return fmt.Errorf("entry %s: not a tar entry", fi.NameInArchive)
		}
		name := fi.NameInArchive // the name checkArchive matched with the manifest
		if name == "manifest.json" || name == "RESTORE.md" {
			return nil
		}
		if err := checkEntry(hdr); err != nil {
			return err
		}
		if p, ok := dumps[name]; ok {
			return extractTo(fi, filepath.Join(r.work, p.comp.Name+p.k.DumpExt()))
		}
		s := find(name)
		if s == nil {
			return nil
		}
		rel := s.rel(name)
		if hdr.Typeflag == tar.TypeLink {
			t := find(hdr.Linkname)
			if t != s {
				return &UnsafeEntryError{hdr.Name, "hard link to an entry outside its component"}
			}
			return s.root.Link(s.rel(hdr.Linkname), rel)
		}
		return writeEntry(s.root, rel, hdr, fi, true)
	})
	if err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	if err := r.relinkAcross(m, dirs, find); err != nil {
		return err
	}
	for _, s := range dirs {
		entries := componentEntries(m, s.p.comp.Name)
		// Metadata last, deepest first, so directory mtimes stay as archived.
		byDepth := slices.Clone(entries)
		sort.Slice(byDepth, func(i, j int) bool { return byDepth[i].Name() > byDepth[j].Name() })
		for _, e := range byDepth {
			if e.Type == "hardlink" {
				continue
			}
			if err := applyMeta(s.root, s.rel(e.Name()), e); err != nil {
				return fmt.Errorf("component %s: %w", s.p.comp.Name, err)
			}
		}
		if why := compareTree(s.root, s.rel, s.base, entries, true); why != "" {
			return fmt.Errorf("component %s staged in %s does not match the manifest of %s: %s", s.p.comp.Name, s.p.staged, archive, why)
		}
		r.req.step("stage:" + s.p.comp.Name)
	}
	for _, p := range dumps {
		if err := r.stageDump(ctx, p, m); err != nil {
			return err
		}
		r.req.step("stage:" + p.comp.Name)
	}
	return nil
}

// relinkAcross gives back the hard links between components: a file
// stored whole in each component (SameFileAs) becomes one file again when
// both components are staged from this archive, before metadata is
// applied (the link changes its directory's mtime). When the other
// component is not restored here, or the link cannot be made, the file
// comes back as its own file, and a note says so.
func (r *restorer) relinkAcross(m *Manifest, dirs []*staged, find func(string) *staged) error {
	for _, s := range dirs {
		for _, e := range componentEntries(m, s.p.comp.Name) {
			if e.Type != "file" || e.SameFileAs == "" {
				continue
			}
			t := find(e.SameFileAs)
			if t == nil || t == s {
				r.res.note("%s was the same file as %s (a hard link across components) when deleted; that component is not restored from the same archive now, so %s comes back as a file of its own",
					e.Name(), e.SameFileAs, e.Name())
				continue
			}
			src := filepath.Join(t.root.Name(), t.rel(e.SameFileAs))
			// The entry and its own hard links inside the component.
			names := []string{e.Name()}
			for _, h := range componentEntries(m, s.p.comp.Name) {
				if h.Type == "hardlink" && h.Target() == e.Name() {
					names = append(names, h.Name())
				}
			}
			for _, n := range names {
				dst := s.rel(n)
				tmp := filepath.Join(filepath.Dir(dst), ".fleetsafe-link-"+filepath.Base(dst))
				if err := os.Link(src, filepath.Join(s.root.Name(), tmp)); err != nil {
					if n != e.Name() {
						return fmt.Errorf("component %s: link %s to %s again: %w", s.p.comp.Name, n, e.SameFileAs, err)
					}
					r.res.note("%s was the same file as %s (a hard link across components) when deleted; linking them again failed (%v), so they come back as two files with the same content",
						e.Name(), e.SameFileAs, err)
					break
				}
				if err := s.root.Rename(tmp, dst); err != nil {
					_ = s.root.Remove(tmp)
					return fmt.Errorf("component %s: link %s to %s again: %w", s.p.comp.Name, n, e.SameFileAs, err)
				}
			}
		}
	}
	return nil
}

// stageDump restores a dump kind's component from its extracted dump into
// its staging place (Kind.Stage), after checking the dump against the
// manifest.
func (r *restorer) stageDump(ctx context.Context, p *pick, m *Manifest) error {
	file := filepath.Join(r.work, p.comp.Name+p.k.DumpExt())
	i := slices.IndexFunc(m.Databases, func(d DumpEntry) bool { return d.Path == p.mc.ArchivePath })
	if i < 0 {
		return fmt.Errorf("component %s: no dump %s in the manifest", p.comp.Name, p.mc.ArchivePath)
	}
	sum, err := hashPath(file)
	if err != nil {
		return err
	}
	if sum != m.Databases[i].SHA256 {
		return fmt.Errorf("component %s: the extracted dump has sha256 %s, the manifest says %s", p.comp.Name, sum, m.Databases[i].SHA256)
	}
	staged, err := p.k.Stage(ctx, r.req.Options.Env(), p.t, file)
	p.staged = staged
	return err
}

// unstage removes staging places (a staging directory, empty once renamed
// into place; a staging database not put in place) and the work
// directory.
func (r *restorer) unstage(ctx context.Context, chosen []*pick) {
	for _, p := range chosen {
		if p.staged == "" || p.ts != nil {
			continue
		}
		_ = p.k.DropStaging(ctx, r.req.Options.Env(), p.staged, p.done)
		p.staged = ""
	}
	if r.work != "" {
		os.RemoveAll(r.work)
		r.work = ""
	}
}

// componentEntries lists the manifest entries of one component.
func componentEntries(m *Manifest, comp string) []FileEntry {
	var out []FileEntry
	for _, e := range m.Files {
		if e.Component == comp {
			out = append(out, e)
		}
	}
	return out
}

// compareTree checks a tree under root against manifest entries: the same
// names and no others, kinds, sizes, link targets, hard links, every
// file's sha256, and with meta also modes, owners (as root) and mtimes.
// It fsyncs every directory when meta is set (the staged tree is about to
// be renamed into place). It returns why it differs, or "".
func compareTree(root *os.Root, rel func(string) string, base string, entries []FileEntry, meta bool) string {
	return compareTreeWith(root, rel, base, entries, meta, true)
}

// compareTreeWith is compareTree; without content, files are compared by
// size, not read again and hashed, and directories are not synced (the
// caller syncs the filesystem).
func compareTreeWith(root *os.Root, rel func(string) string, base string, entries []FileEntry, meta, content bool) string {
	return compareTreeLinks(root, rel, base, entries, meta, content, nil)
}

// compareTreeLinks is compareTreeWith; links, when set, also judges each
// regular file's other names (ownLinks.check).
func compareTreeLinks(root *os.Root, rel func(string) string, base string, entries []FileEntry, meta, content bool, links *ownLinks) string {
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
			add("%s is a %s, the manifest says %s", e.Name(), describe(fi.Mode()), e.Type)
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
			sum, err := hashFile(nil, root, p, buf)
			if err != nil || sum != e.SHA256 {
				add("%s has sha256 %s, the manifest says %s", e.Name(), sum, e.SHA256)
				continue
			}
			if links != nil {
				if why := links.check(e, filepath.Join(root.Name(), p), fi); why != "" {
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

func extractTo(fi archives.FileInfo, dest string) error {
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

func hashPath(path string) (string, error) {
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

// writeEntry writes one entry; with sync, a regular file is synced before
// it is closed, else its writeback is only started (the caller syncs the
// filesystem before the tree is renamed into place).
func writeEntry(root *os.Root, rel string, hdr *tar.Header, fi archives.FileInfo, sync bool) error {
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

func applyMeta(root *os.Root, rel string, e FileEntry) error {
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

// quarantineHeld reports whether a quarantine move's target still exists.
func quarantineHeld(ctx context.Context, opts instance.Options, m QuarantineMove) (bool, error) {
	k, err := kindOf(m.Type)
	if err != nil {
		return false, err
	}
	return k.Held(ctx, opts.Env(), m.move())
}

// compareQuarantine checks a quarantined dir or file component against
// the manifest of its archive: the same entries and no others, kinds,
// sizes, link targets and every file's sha256, modes, owners and mtimes;
// no file sharing its inode with a name outside the instance (places:
// where each component of the instance may be now, for the hard links
// across components the manifest records; ownLinks), and no mount point
// at or under it nor a bind mount showing it elsewhere. Databases and
// units are checked for presence only (quarantineHeld). It returns why
// the copy is not the archived content, or "".
func compareQuarantine(q QuarantineMove, comp string, m *Manifest, places map[string][]string) string {
	if !shapeOf(q.Type).IsTree() {
		return ""
	}
	i := slices.IndexFunc(m.Components, func(c ManifestComponent) bool { return c.Name == comp })
	if i < 0 {
		return "its archive does not hold it"
	}
	mc := m.Components[i]
	root, err := os.OpenRoot(filepath.Dir(q.To))
	if err != nil {
		return err.Error()
	}
	defer root.Close()
	s := &staged{p: &pick{comp: instance.Component{Type: q.Type}, mc: mc}, base: filepath.Base(q.To)}
	if why := compareTreeLinks(root, s.rel, s.base, componentEntries(m, comp), true, true, newOwnLinks(m, comp, places)); why != "" {
		return why
	}
	return mountedAt(q.To)
}

func owner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
