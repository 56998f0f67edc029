package softdelete

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// checkArchiveDir refuses an archive directory that lies inside a
// component of any instance of the layout, or contains one: its archives
// and tombstones would be quarantined (and purged) with the data, and a
// restore would find nothing. Symbolic links in archive_dir are resolved
// as far as it exists.
func checkArchiveDir(l *instance.Layout, name, archiveDir string) error {
	cands := []string{filepath.Clean(archiveDir)}
	if real := resolveExisting(archiveDir); real != cands[0] {
		cands = append(cands, real)
	}
	for _, c := range l.Components {
		if !c.IsPath() {
			continue
		}
		tmpl := filepath.Clean(c.Template.Raw)
		for _, a := range cands {
			rel, inside := relateToTemplate(a, tmpl)
			if rel == "" {
				continue
			}
			how := fmt.Sprintf("contains the component %s of every instance (%s)", c.Name, tmpl)
			if inside {
				how = fmt.Sprintf("is inside the component %s of instance %s (%s)", c.Name, rel, tmpl)
			} else if rel != "*" {
				how = fmt.Sprintf("contains the component %s of instance %s (%s)", c.Name, rel, tmpl)
			}
			shown := archiveDir
			if a != filepath.Clean(archiveDir) {
				shown = fmt.Sprintf("%s (really %s)", archiveDir, a)
			}
			return &RefusedError{Name: name,
				Reason: fmt.Sprintf("archive_dir %s %s: its archives and tombstones would be quarantined and purged with the data", shown, how),
				Advice: "choose an archive_dir outside every instance's components"}
		}
	}
	// The target's own components, as they are now (a symlinked parent
	// the template does not show).
	for _, c := range l.Components {
		if !c.IsPath() {
			continue
		}
		_, _, full, err := instance.Locate(c, name)
		if err != nil {
			continue
		}
		real, err := filepath.EvalSymlinks(full)
		if err != nil {
			continue
		}
		for _, a := range cands {
			if within(a, real) || within(real, a) {
				return &RefusedError{Name: name,
					Reason: fmt.Sprintf("archive_dir %s and the component %s of %s (%s, really %s) overlap: archives and tombstones would be quarantined with the data", archiveDir, c.Name, name, full, real),
					Advice: "choose an archive_dir outside every instance's components"}
			}
		}
	}
	return nil
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
