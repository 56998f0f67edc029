package softdelete

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/mholt/archives"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
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
func (r *restorer) stageAll(ctx context.Context, chosen []*pick, manifests map[string]*archive.Manifest) error {
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
	if archive.ShapeOf(typ) == kind.TreeFile || name == archivePath {
		return top
	}
	return filepath.Join(top, filepath.FromSlash(strings.TrimPrefix(name, archivePath+"/")))
}

func (r *restorer) stageArchive(ctx context.Context, arch string, picks []*pick, m *archive.Manifest) error {
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
	ref := r.refs[arch]
	f, err := archive.OpenMetered(ctx, archive.PhaseRestore, ref.st, ref.key)
	if err != nil {
		return err
	}
	defer f.Close()
	err = archive.Codec.Extract(ctx, f, func(ctx context.Context, fi archives.FileInfo) error {
		hdr, _ := fi.Header.(*tar.Header)
		if hdr == nil {
			return fmt.Errorf("entry %s: not a tar entry", fi.NameInArchive)
		}
		name := fi.NameInArchive // the name archive.Check matched with the manifest
		if name == "manifest.json" || name == "RESTORE.md" {
			return nil
		}
		if err := archive.CheckEntry(hdr); err != nil {
			return err
		}
		if p, ok := dumps[name]; ok {
			return archive.ExtractTo(fi, filepath.Join(r.work, p.comp.Name+p.k.DumpExt()))
		}
		s := find(name)
		if s == nil {
			return nil
		}
		rel := s.rel(name)
		if hdr.Typeflag == tar.TypeLink {
			t := find(hdr.Linkname)
			if t != s {
				return &archive.UnsafeEntryError{Entry: hdr.Name, Reason: "hard link to an entry outside its component"}
			}
			return s.root.Link(s.rel(hdr.Linkname), rel)
		}
		return archive.WriteEntry(s.root, rel, hdr, fi, true)
	})
	if err != nil {
		return fmt.Errorf("extract %s: %w", arch, err)
	}
	if err := r.relinkAcross(m, dirs, find); err != nil {
		return err
	}
	for _, s := range dirs {
		entries := archive.ComponentEntries(m, s.p.comp.Name)
		// Metadata last, deepest first, so directory mtimes stay as archived.
		byDepth := slices.Clone(entries)
		sort.Slice(byDepth, func(i, j int) bool { return byDepth[i].Name() > byDepth[j].Name() })
		for _, e := range byDepth {
			if e.Type == "hardlink" {
				continue
			}
			if err := archive.ApplyMeta(s.root, s.rel(e.Name()), e); err != nil {
				return fmt.Errorf("component %s: %w", s.p.comp.Name, err)
			}
		}
		if why := archive.CompareTree(s.root, s.rel, s.base, entries, true); why != "" {
			return fmt.Errorf("component %s staged in %s does not match the manifest of %s: %s", s.p.comp.Name, s.p.staged, arch, why)
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
func (r *restorer) relinkAcross(m *archive.Manifest, dirs []*staged, find func(string) *staged) error {
	for _, s := range dirs {
		for _, e := range archive.ComponentEntries(m, s.p.comp.Name) {
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
			for _, h := range archive.ComponentEntries(m, s.p.comp.Name) {
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
func (r *restorer) stageDump(ctx context.Context, p *pick, m *archive.Manifest) error {
	file := filepath.Join(r.work, p.comp.Name+p.k.DumpExt())
	i := slices.IndexFunc(m.Databases, func(d archive.DumpEntry) bool { return d.Path == p.mc.ArchivePath })
	if i < 0 {
		return fmt.Errorf("component %s: no dump %s in the manifest", p.comp.Name, p.mc.ArchivePath)
	}
	sum, err := archive.HashPath(file)
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
func compareQuarantine(q QuarantineMove, comp string, m *archive.Manifest, places map[string][]string) string {
	if !archive.ShapeOf(q.Type).IsTree() {
		return ""
	}
	i := slices.IndexFunc(m.Components, func(c archive.ManifestComponent) bool { return c.Name == comp })
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
	if why := archive.CompareTreeLinks(root, s.rel, s.base, archive.ComponentEntries(m, comp), true, true, newOwnLinks(m, comp, places).check); why != "" {
		return why
	}
	return mountedAt(q.To)
}
