package softdelete

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// checkArchiveDir refuses an archive directory that lies inside a
// component of any instance, or contains one: of the layout given and of
// every other layout of the host (l.Others), since an archive written into
// another app's instance is archived, quarantined and purged with that
// instance. Its archives and tombstones would be quarantined (and purged)
// with the data, and a restore would find nothing. Symbolic links are
// resolved on both sides: in archive_dir as far as it exists, in each
// template's parent directory (a layout reaching its instances through a
// symlinked parent), and in the path of every instance present now (a
// symlinked {name} element or component).
func checkArchiveDir(l *instance.Layout, name, archiveDir string) error {
	cands := []string{filepath.Clean(archiveDir)}
	if real := resolveExisting(archiveDir); real != cands[0] {
		cands = append(cands, real)
	}
	shown := func(a string) string {
		if a != filepath.Clean(archiveDir) {
			return fmt.Sprintf("%s (really %s)", archiveDir, a)
		}
		return archiveDir
	}
	refuse := func(reason string) error {
		return &RefusedError{Name: name,
			Reason: reason + ": its archives and tombstones would be quarantined and purged with that data",
			Advice: "choose an archive_dir outside every instance's components, of every layout of the host"}
	}
	layouts := append([]*instance.Layout{l}, l.Others...)
	for _, lay := range layouts {
		of := ""
		if lay != l {
			of = fmt.Sprintf(" of app %s (layout %s)", lay.App, lay.Source)
		}
		for _, c := range lay.Components {
			if !c.IsPath() {
				continue
			}
			tmpls := []string{filepath.Clean(c.Template.Raw)}
			pt := instance.SplitPath(c.Template)
			if rp := resolveExisting(pt.Parent); rp != pt.Parent {
				tmpls = append(tmpls, filepath.Join(rp, pt.Elem.Raw, pt.Rest))
			}
			for _, tmpl := range tmpls {
				for _, a := range cands {
					rel, inside := relateToTemplate(a, tmpl)
					if rel == "" {
						continue
					}
					how := fmt.Sprintf("contains the component %s%s of every instance (%s)", c.Name, of, tmpl)
					if inside {
						how = fmt.Sprintf("is inside the component %s of instance %s%s (%s)", c.Name, rel, of, tmpl)
					} else if rel != "*" {
						how = fmt.Sprintf("contains the component %s of instance %s%s (%s)", c.Name, rel, of, tmpl)
					}
					return refuse(fmt.Sprintf("archive_dir %s %s", shown(a), how))
				}
			}
		}
	}
	// Every instance as the host has it now (the target's components too,
	// present or not): a symlinked {name} element or component that the
	// templates do not show.
	for _, lay := range layouts {
		for _, c := range lay.Components {
			if !c.IsPath() {
				continue
			}
			names := []string{}
			if lay == l {
				names = append(names, name)
			}
			names = append(names, presentNames(c)...)
			for _, n := range names {
				_, _, full, err := instance.Locate(c, n)
				if err != nil {
					continue
				}
				real, err := filepath.EvalSymlinks(full)
				if err != nil {
					continue
				}
				for _, a := range cands {
					if within(a, real) || within(real, a) {
						return refuse(fmt.Sprintf("archive_dir %s and the component %s of instance %s of app %s (%s, really %s) overlap",
							archiveDir, c.Name, n, lay.App, full, real))
					}
				}
			}
		}
	}
	return nil
}

// presentNames lists the entries of a path component's parent directory
// (through its symbolic links) that its {name} element matches, hidden
// ones included: whatever could be taken for an instance.
func presentNames(c instance.Component) []string {
	pt := instance.SplitPath(c.Template)
	entries, err := os.ReadDir(pt.Parent)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if n, ok := pt.Elem.Match(e.Name()); ok {
			out = append(out, n)
		}
	}
	return out
}

// relateToTemplate compares a path with a component path template element
// by element. It returns "" when neither contains the other; otherwise the
// instance name the {name} element matched ("*" when the path stops
// before it) and whether the path lies at or under the component.
func relateToTemplate(p, tmpl string) (string, bool) {
	pe := strings.Split(strings.TrimPrefix(p, "/"), "/")
	te := strings.Split(strings.TrimPrefix(tmpl, "/"), "/")
	if p == "/" {
		pe = nil
	}
	matched := "*"
	for i := 0; i < len(pe) && i < len(te); i++ {
		t := te[i]
		if j := strings.Index(t, instance.Placeholder); j >= 0 {
			elem := instance.Template{Raw: t, Prefix: t[:j], Suffix: t[j+len(instance.Placeholder):]}
			n, ok := elem.Match(pe[i])
			if !ok {
				return "", false
			}
			matched = n
			continue
		}
		if pe[i] != t {
			return "", false
		}
	}
	return matched, len(pe) >= len(te)
}

// within reports whether p is dir or lies under it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

// resolveExisting resolves the symbolic links of the longest existing
// prefix of p and appends the rest.
func resolveExisting(p string) string {
	p = filepath.Clean(p)
	rest := ""
	for d := p; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			if real, err := filepath.EvalSymlinks(d); err == nil {
				return filepath.Join(real, rest)
			}
			return p
		}
		if filepath.Dir(d) == d {
			return p
		}
		rest = filepath.Join(filepath.Base(d), rest)
	}
}
