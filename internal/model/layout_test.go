package model

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// A small alphabet of literals around {name}, so that random layouts often
// overlap: a suffix that an instance name can also end with, a nested path
// under another component's {name} element, a bare {name} database.
var (
	pathParents  = []string{"/srv/x", "/srv/x/y", "/opt/app", "/srv/x/a"}
	pathPrefixes = []string{"", "a", "a-", "b-"}
	pathSuffixes = []string{"", "-d", "-data", "-a", ".d"}
	pathRests    = []string{"", "", "data", "d", "a/b"}
	dbPrefixes   = []string{"", "a", "a_", "x_"}
	dbSuffixes   = []string{"", "_d", "d", "_a"}
)

// typeSQLite is the sqlite kind's component type.
const typeSQLite = "sqlite"

type genComponent struct {
	name, typ, template string
}

// genLayout draws a layout of 2 to 4 dir, file, sqlite and postgresql
// components (sqlite is a path kind: its file template collides with dir
// and file templates like theirs with each other).
func genLayout(t *rapid.T) []genComponent {
	n := rapid.IntRange(2, 4).Draw(t, "components")
	var out []genComponent
	for i := range n {
		typ := rapid.SampledFrom([]string{instance.TypeDir, instance.TypeDir, instance.TypeFile, typeSQLite, instance.TypePostgreSQL}).Draw(t, "type")
		var tmpl string
		if typ == instance.TypePostgreSQL {
			tmpl = rapid.SampledFrom(dbPrefixes).Draw(t, "dbprefix") + instance.Placeholder + rapid.SampledFrom(dbSuffixes).Draw(t, "dbsuffix")
		} else {
			tmpl = rapid.SampledFrom(pathParents).Draw(t, "parent") + "/" +
				rapid.SampledFrom(pathPrefixes).Draw(t, "prefix") + instance.Placeholder + rapid.SampledFrom(pathSuffixes).Draw(t, "suffix")
			if rest := rapid.SampledFrom(pathRests).Draw(t, "rest"); rest != "" {
				tmpl += "/" + rest
			}
		}
		out = append(out, genComponent{name: fmt.Sprintf("c%d", i), typ: typ, template: tmpl})
	}
	return out
}

func layoutYAML(comps []genComponent) string {
	var b strings.Builder
	b.WriteString("app: gen\ncomponents:\n")
	for _, c := range comps {
		key := "path"
		if c.typ == instance.TypePostgreSQL {
			key = "database"
		}
		fmt.Fprintf(&b, "  - name: %s\n    type: %s\n    %s: '%s'\n", c.name, c.typ, key, c.template)
	}
	return b.String()
}

// locator is one (instance, component) pair and what it denotes.
type locator struct {
	instance, component, kind, value string
}

// contains reports whether path a is b or an ancestor of b.
func contains(a, b string) bool {
	return a == b || strings.HasPrefix(b, strings.TrimSuffix(a, "/")+"/")
}

// TestLayoutOverlapRefused attacks invariant 9: a layout is either refused
// when loaded, or no two (instance, component) pairs, for any valid names,
// denote the same path or database, nor does one path contain another.
// Names are drawn from a small alphabet so that a name can end with
// another template's suffix ("a-d" under /srv/x/{name} is "a" under
// /srv/x/{name}-d).
//
// Expected to FAIL until pkg/instance refuses overlapping layouts (the
// ambiguity analysis): today ParseLayout accepts them.
func TestLayoutOverlapRefused(t *testing.T) {
	runProperty(t, shareLayout, func(t *rapid.T) {
		comps := genLayout(t)
		src := layoutYAML(comps)
		l, err := instance.ParseLayout([]byte(src), "generated.yml")
		if err != nil {
			return // refused: allowed
		}
		for _, c := range l.Components {
			if c.Type == instance.TypePostgreSQL && c.Template.Raw == instance.Placeholder {
				t.Fatalf("layout accepted with a bare {name} database (component %s): every database of the server, postgres included, is then an instance of it\n%s", c.Name, src)
			}
		}
		names := rapid.SliceOfNDistinct(rapid.StringMatching(`[a-d][a-d-]{0,5}`), 2, 5, rapid.ID[string]).Draw(t, "names")
		var locs []locator
		for _, n := range names {
			if l.ValidateName(n) != nil {
				continue
			}
			for _, c := range l.Components {
				switch {
				case c.IsPath():
					_, _, full, err := instance.Locate(c, n)
					if err != nil {
						continue // the name is refused for this component
					}
					locs = append(locs, locator{n, c.Name, "path", filepath.Clean(full)})
				case c.Type == instance.TypePostgreSQL:
					locs = append(locs, locator{n, c.Name, "database", c.Template.Expand(n)})
				}
			}
		}
		for i, a := range locs {
			for j, b := range locs {
				if i == j || a.kind != b.kind {
					continue
				}
				if a.kind == "database" && a.value == b.value && i < j {
					t.Fatalf("layout accepted, but instance %s component %s and instance %s component %s are both database %s\n%s",
						a.instance, a.component, b.instance, b.component, a.value, src)
				}
				if a.kind == "path" && contains(a.value, b.value) && (a.value != b.value || i < j) {
					t.Fatalf("layout accepted, but instance %s component %s (%s) is or contains instance %s component %s (%s)\n%s",
						a.instance, a.component, a.value, b.instance, b.component, b.value, src)
				}
			}
		}
	})
}

// TestLayoutDisjointAccepted is the other side: layouts whose components
// live under distinct parents with distinct database affixes are never
// refused for overlap, so the analysis cannot pass the property above by
// refusing everything.
func TestLayoutDisjointAccepted(t *testing.T) {
	runProperty(t, shareLayout, func(t *rapid.T) {
		n := rapid.IntRange(1, 4).Draw(t, "components")
		var comps []genComponent
		for i := range n {
			typ := rapid.SampledFrom([]string{instance.TypeDir, instance.TypeFile, typeSQLite}).Draw(t, "type")
			tmpl := fmt.Sprintf("/srv/app/c%d/", i) + rapid.SampledFrom(pathPrefixes).Draw(t, "prefix") + instance.Placeholder
			if rest := rapid.SampledFrom(pathRests).Draw(t, "rest"); rest != "" {
				tmpl += "/" + rest
			}
			comps = append(comps, genComponent{name: fmt.Sprintf("c%d", i), typ: typ, template: tmpl})
		}
		if rapid.Bool().Draw(t, "database") {
			comps = append(comps, genComponent{name: "db", typ: instance.TypePostgreSQL, template: "app_" + instance.Placeholder})
		}
		src := layoutYAML(comps)
		if _, err := instance.ParseLayout([]byte(src), "generated.yml"); err != nil {
			t.Fatalf("a layout without overlap was refused: %v\n%s", err, src)
		}
	})
}

// TestMachineLayoutsAccepted loads every layout the state machines can
// draw: none may be refused (the machines would test nothing), and each
// resolves the candidate names to distinct places.
func TestMachineLayoutsAccepted(t *testing.T) {
	for _, c := range configShapes {
		for _, d := range dataShapes {
			for _, e := range envShapes {
				for _, db := range dbShapes {
					for _, lite := range liteShapes {
						for _, my := range myShapes {
							src := machineLayout("/tmp/model-root", "fsapp", layoutShapes{c, d, e, db, lite, my})
							l, err := instance.ParseLayout([]byte(src), "machine.yml")
							if err != nil {
								t.Fatalf("a layout of the state machine is refused: %v\n%s", err, src)
							}
							seen := map[string]string{}
							for _, n := range candidateNames {
								if err := l.ValidateName(n); err != nil {
									t.Fatalf("candidate name %q refused by\n%s: %v", n, src, err)
								}
								for _, comp := range l.Components {
									loc := comp.Template.Expand(n)
									if prev, ok := seen[loc]; ok {
										t.Fatalf("%s and %s/%s are both %s\n%s", prev, n, comp.Name, loc, src)
									}
									seen[loc] = n + "/" + comp.Name
								}
							}
						}
					}
				}
			}
		}
	}
}
