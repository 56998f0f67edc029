package softdelete

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

// ownLinks tells whether a regular file of a tree about to be taken as an
// instance's own content (a quarantined copy before its rename back, what
// already holds a relocation's new place) shares its inode only with names
// of that instance. Same bytes, mode, owner and mtime are not enough: a
// hard link to another instance's file passes them all, and the restored
// instance would then write into the other's file (FINDINGS-6 #3).
//
// A file's names that belong to the instance are the ones its manifest
// records: the entry, its hard links inside the component, and, for a file
// that was the same file as an entry of another component (SameFileAs),
// that entry and its hard links, counted only when found, the same inode,
// where that component is now (its quarantine or its place in the layout).
// A link count above that count means a name outside the instance.
// Files the deletion archived under accept_losses: [hard_links] (shared
// with a name outside the instance when deleted) are not judged.
//
// A reflink (a copy sharing extents, btrfs or XFS) is not seen here and
// need not be: its blocks are copied on the first write, so the two files
// never change each other.
type ownLinks struct {
	m      *archive.Manifest
	comp   string
	places map[string][]string // component -> where its top entry may be now
	// names lists, per component and first entry, the entry's names in
	// that component (itself and its hard links).
	names map[string]map[string][]string
	// members lists, per group of a file that was hard-linked across
	// components (by its first entry), the group's "file" entries: the
	// first and each naming it in SameFileAs.
	members map[string][]archive.FileEntry
	// shared marks the groups (by their first entry) recorded as shared
	// with a name outside the instance and accepted (hard_links).
	shared map[string]bool
}

func newOwnLinks(m *archive.Manifest, comp string, places map[string][]string) *ownLinks {
	o := &ownLinks{m: m, comp: comp, places: places, names: map[string]map[string][]string{},
		members: map[string][]archive.FileEntry{}, shared: map[string]bool{}}
	for _, e := range m.Files {
		if e.Type == "file" && e.SameFileAs != "" {
			o.members[e.SameFileAs] = append(o.members[e.SameFileAs], e)
		}
	}
	for _, e := range m.Files {
		if e.Type == "file" && len(o.members[e.Name()]) > 0 && e.SameFileAs == "" {
			o.members[e.Name()] = append(o.members[e.Name()], e)
		}
		var first string
		switch e.Type {
		case "file":
			first = e.Name()
		case "hardlink":
			first = e.Target()
		default:
			continue
		}
		byFirst := o.names[e.Component]
		if byFirst == nil {
			byFirst = map[string][]string{}
			o.names[e.Component] = byFirst
		}
		byFirst[first] = append(byFirst[first], e.Name())
	}
	var index map[[2]string]archive.FileEntry
	for _, l := range m.Losses {
		if l.Kind != archive.LossHardLinks {
			continue
		}
		if index == nil {
			index = map[[2]string]archive.FileEntry{}
			for _, e := range m.Files {
				index[[2]string{e.Component, e.Name()}] = e
			}
		}
		if name, ok := o.archiveName(l.Component, l.Path); ok {
			o.shared[groupOf(index, l.Component, name)] = true
		}
	}
	return o
}

// archiveName maps a path a deletion saw (under the component's locator)
// to the component's entry name in the archive.
func (o *ownLinks) archiveName(comp, path string) (string, bool) {
	for _, mc := range o.m.Components {
		if mc.Name != comp || mc.ArchivePath == "" {
			continue
		}
		if path == mc.Locator {
			if archive.ShapeOf(mc.Type) == kind.TreeFile {
				// The file's entry is under the component's directory.
				return mc.ArchivePath + "/" + filepath.Base(mc.Locator), true
			}
			return mc.ArchivePath, true
		}
		if rest, ok := strings.CutPrefix(path, mc.Locator+"/"); ok {
			return mc.ArchivePath + "/" + filepath.ToSlash(rest), true
		}
	}
	return "", false
}

// groupOf returns the first entry, in any component, of the file named
// name in comp: what SameFileAs entries name.
func groupOf(index map[[2]string]archive.FileEntry, comp, name string) string {
	e, ok := index[[2]string{comp, name}]
	if ok && e.Type == "hardlink" {
		e, ok = index[[2]string{comp, e.Target()}]
	}
	switch {
	case !ok:
		return name
	case e.SameFileAs != "":
		return e.SameFileAs
	}
	return e.Name()
}

// check judges one "file" entry e of the component found at full with fi;
// it returns why the file is not only the instance's, or "".
func (o *ownLinks) check(e archive.FileEntry, full string, fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink <= 1 {
		return ""
	}
	group := e.Name()
	if e.SameFileAs != "" {
		group = e.SameFileAs
	}
	if o.shared[group] {
		return ""
	}
	own := len(o.names[o.comp][e.Name()])
	for _, f := range o.members[group] {
		if f.Component == o.comp {
			continue
		}
		for _, n := range o.names[f.Component][f.Name()] {
			for _, place := range o.places[f.Component] {
				p, ok := o.pathIn(f.Component, place, n)
				if !ok {
					continue
				}
				if ofi, err := os.Lstat(p); err == nil && os.SameFile(fi, ofi) {
					own++
					break
				}
			}
		}
	}
	if uint64(st.Nlink) <= uint64(own) {
		return ""
	}
	return fmt.Sprintf("%s has link count %d but only %d name%s of it in this instance: it shares its inode with a name outside the instance (a hard link, perhaps to another instance's file), and writes to one would change the other; remove that link or replace %s by a copy (cp --preserve=all), then run again",
		full, st.Nlink, own, kind.Plural(own, "", "s"), full)
}

// pathIn is where entry name of component comp is when that component's
// top entry is at place (entryAt); false for a name outside the component.
func (o *ownLinks) pathIn(comp, place, name string) (string, bool) {
	for _, mc := range o.m.Components {
		if mc.Name != comp || mc.ArchivePath == "" {
			continue
		}
		if name == mc.ArchivePath || strings.HasPrefix(name, mc.ArchivePath+"/") {
			return entryAt(mc.Type, mc.ArchivePath, place, name), true
		}
	}
	return "", false
}

// mountedAt says why the tree at path is not only the instance's because
// of mounts: a mount point at or under it (another filesystem, a bind
// mount of another directory), or path bind-mounted elsewhere (its files
// shown, and changed, at another place). "" when neither.
func mountedAt(path string) string {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Sprintf("%s: %v", path, err)
	}
	under, err := archive.MountsUnder(real)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, mp := range under {
		out = append(out, fmt.Sprintf("%s is a mount point (another filesystem or a bind mount): its content is not the instance's", mp))
	}
	elsewhere, err := archive.MountedElsewhere(real)
	if err != nil {
		return err.Error()
	}
	for _, mp := range elsewhere {
		out = append(out, fmt.Sprintf("%s is also shown at %s by a bind mount: that place would change with it", path, mp))
	}
	return strings.Join(out, "; ")
}

// instancePlaces lists, per dir or file component of the layout, where
// its top entry may be now: its place in this host's layout, its staging
// place (an interrupted restore's, not yet cleaned in check mode) and,
// when the deletion has a tombstone, its quarantine.
func (r *restorer) instancePlaces(d *deletion) map[string][]string {
	out := map[string][]string{}
	for _, c := range r.l.Components {
		if !archive.ShapeOf(c.Type).IsTree() {
			continue
		}
		t, err := target(r.l.App, r.req.Name, c)
		if err != nil || t.Locator == "" {
			continue
		}
		out[c.Name] = append(out[c.Name], t.Locator)
		if k, ok := c.Kind(); ok {
			out[c.Name] = append(out[c.Name], filepath.Join(k.Staging(t), filepath.Base(t.Locator)))
		}
	}
	if d != nil && d.ts != nil {
		for _, q := range d.ts.Components {
			if archive.ShapeOf(q.Type).IsTree() && q.To != "" {
				out[q.Component] = append(out[q.Component], q.To)
			}
		}
	}
	return out
}
