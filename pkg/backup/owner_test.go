package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// ownershipLayout has a flat rule, where a name can run into the wildcard
// (data-{name}-*.tar.gz), and a rule with a directory per instance.
func ownershipLayout(t interface{ Fatal(...any) }, root string) *instance.Layout {
	yaml := fmt.Sprintf(`app: own
components:
  - name: data
    type: dir
    path: %[1]s/srv/{name}
  - name: db
    type: dir
    path: %[1]s/db/{name}
backups:
  - component: data
    path: %[1]s/flat/data-{name}-*.tar.gz
    format: any
  - component: db
    path: %[1]s/dirs/{name}/db-*.dump
    format: any
`, root)
	l, err := instance.ParseLayout([]byte(yaml), "own.yml")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestOwnership_Property: random names sharing prefixes and hyphens, some
// present and some only with backups, each with backups whose stamps may
// hold hyphens and letters. Whatever the draw: no file is credited to two
// instances; a file is credited only to a name whose rule matches it; a
// file that only one of the names really in use can claim is credited to
// it when it is present; an ambiguous file really could belong to two of
// them; the candidates of a file include its true owner.
func TestOwnership_Property(t *testing.T) {
	base := t.TempDir()
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		root := filepath.Join(base, fmt.Sprint(n))
		defer os.RemoveAll(root)
		l := ownershipLayout(rt, root)
		token := rapid.SampledFrom([]string{"a", "b", "ab", "old", "1", "x"})
		nameGen := rapid.Custom(func(rt *rapid.T) string {
			return strings.Join(rapid.SliceOfN(token, 1, 3).Draw(rt, "tokens"), "-")
		})
		names := rapid.SliceOfNDistinct(nameGen, 1, 6, rapid.ID[string]).Draw(rt, "names")
		stamp := rapid.SampledFrom([]string{"20260101", "2026-01-01", "old-1", "b", "1-x", "ab-20260102"})
		var present []string
		// certain are the names the host or a file proves: present, or
		// with a directory of their own.
		var certain []string
		owner := map[string]string{} // file -> true owner
		for _, name := range names {
			if rapid.Bool().Draw(rt, "present "+name) {
				present = append(present, name)
				certain = append(certain, name)
			}
			for _, s := range rapid.SliceOfNDistinct(stamp, 0, 3, rapid.ID[string]).Draw(rt, "flat "+name) {
				p := filepath.Join(root, "flat", "data-"+name+"-"+s+".tar.gz")
				if prev, dup := owner[p]; dup {
					// Two names wrote the same file name: keep the first.
					_ = prev
					continue
				}
				owner[p] = name
			}
			if rapid.Bool().Draw(rt, "dir "+name) {
				owner[filepath.Join(root, "dirs", name, "db-1.dump")] = name
				certain = append(certain, name)
			}
		}
		for p := range owner {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				rt.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				rt.Fatal(err)
			}
		}
		o := findOwners(l, present, nil)
		for i, r := range l.Backups {
			credited := map[string][]string{}
			ambiguousFor := map[string][]string{}
			for _, name := range present {
				own, amb := o.filesOf(i, name)
				for _, f := range own {
					credited[f.path] = append(credited[f.path], name)
					if ok, _ := filepath.Match(expandRule(r, name), f.path); !ok {
						rt.Fatalf("%s credited to %s, whose rule %s does not match it", f.path, name, expandRule(r, name))
					}
				}
				for _, f := range amb {
					ambiguousFor[f.path] = append(ambiguousFor[f.path], name)
				}
			}
			for _, f := range o.byRule[i] {
				if len(credited[f.path]) > 1 {
					rt.Fatalf("%s credited to %v", f.path, credited[f.path])
				}
				trueOwner, ours := owner[f.path]
				if !ours {
					rt.Fatalf("%s found but never written", f.path)
				}
				if !slices.Contains(f.candidates, trueOwner) {
					rt.Fatalf("%s: candidates %v miss its writer %s", f.path, f.candidates, trueOwner)
				}
				// The names really in use that the rule can expand to f.
				var can []string
				for _, name := range names {
					if ok, _ := filepath.Match(expandRule(r, name), f.path); ok {
						can = append(can, name)
					}
				}
				if len(can) == 1 && slices.Contains(present, can[0]) && !slices.Equal(credited[f.path], can) {
					rt.Fatalf("%s can only be %s's, credited to %v (owners %v)", f.path, can[0], credited[f.path], f.owners)
				}
				for _, c := range credited[f.path] {
					for _, other := range can {
						if other != c && slices.Contains(certain, other) {
							rt.Fatalf("%s credited to %s, though %s (present or with backups of its own) can claim it too", f.path, c, other)
						}
					}
				}
				if len(ambiguousFor[f.path]) > 0 {
					if len(credited[f.path]) > 0 {
						rt.Fatalf("%s both credited to %v and ambiguous for %v", f.path, credited[f.path], ambiguousFor[f.path])
					}
					for _, a := range f.owners {
						if !slices.Contains(can, a) {
							rt.Fatalf("%s ambiguous with %s, a name not in use (%v)", f.path, a, names)
						}
					}
				}
			}
		}
	})
}

// TestCandidates_Examples pins the rule on the cases of the issue.
func TestCandidates_Examples(t *testing.T) {
	l := ownershipLayout(t, "/r")
	valid := func(n string) bool { return l.ValidateName(n) == nil }
	flat, dirs := l.Backups[0], l.Backups[1]
	cases := []struct {
		rule instance.BackupRule
		file string
		want []string
	}{
		{flat, "/r/flat/data-acme-old-20260101.tar.gz", []string{"acme", "acme-old"}},
		{flat, "/r/flat/data-acme-20260101.tar.gz", []string{"acme"}},
		{flat, "/r/flat/data-acme-2026-01-01.tar.gz", []string{"acme", "acme-2026", "acme-2026-01"}},
		{flat, "/r/flat/data--1.tar.gz", nil},
		{dirs, "/r/dirs/acme-old/db-1.dump", []string{"acme-old"}},
		{dirs, "/r/dirs/acme-old/x/db-1.dump", nil},
	}
	for _, c := range cases {
		if got := candidates(c.rule, c.file, valid); !slices.Equal(got, c.want) {
			t.Errorf("candidates(%s, %s) = %v, want %v", c.rule.Path, c.file, got, c.want)
		}
	}
}

func TestRunOnRules(t *testing.T) {
	l := ownershipLayout(t, "/r")
	w := runOnRules(l)
	require := func(cond bool, msg string) {
		t.Helper()
		if !cond {
			t.Error(msg)
		}
	}
	require(len(w) == 1, fmt.Sprintf("one rule runs on: %v", w))
	require(len(w) == 1 && strings.Contains(w[0], "/r/flat/data-{name}-*.tar.gz") && strings.Contains(w[0], "line "), fmt.Sprint(w))
	for _, c := range []struct {
		elem string
		runs bool
	}{
		{"{name}", false}, {"{name}.tar.gz", false}, {"data-{name}.*.tar.gz", false}, {"data-{name}_*.tar.gz", false},
		{"data-{name}-*.tar.gz", true}, {"data-{name}*", true}, {"*-{name}.tar.gz", true}, {"x{name}1*", true},
	} {
		yaml := "app: x\ncomponents:\n  - name: d\n    type: dir\n    path: /srv/x/{name}\nbackups:\n  - component: d\n    path: /b/" + c.elem + "\n    format: any\n"
		l, err := instance.ParseLayout([]byte(yaml), "r.yml")
		if err != nil {
			t.Fatal(err)
		}
		require((len(runOnRules(l)) == 1) == c.runs, fmt.Sprintf("%s: runs on %v, want %v", c.elem, runOnRules(l), c.runs))
	}
}

// TestOwnership_OrphanNames: an orphan proves its name only by a file with
// one candidate; otherwise every candidate is listed.
func TestOwnership_OrphanNames(t *testing.T) {
	root := t.TempDir()
	l := ownershipLayout(t, root)
	for _, p := range []string{"flat/data-a-c-1.tar.gz", "flat/data-gone-1.tar.gz", "dirs/x-y/db-1.dump", "flat/data-x-y-1.tar.gz", "flat/data-p-1.tar.gz"} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := findOwners(l, []string{"p"}, nil).orphans(l)
	want := []Orphan{
		{Name: "a or a-c", Component: "data", Files: []string{filepath.Join(root, "flat/data-a-c-1.tar.gz")}},
		{Name: "gone", Component: "data", Files: []string{filepath.Join(root, "flat/data-gone-1.tar.gz")}},
		// data-x-y-1 has the candidates x and x-y; x-y is proven by its
		// directory, x by nothing: the file is x-y's.
		{Name: "x-y", Component: "data", Files: []string{filepath.Join(root, "flat/data-x-y-1.tar.gz")}},
		{Name: "x-y", Component: "db", Files: []string{filepath.Join(root, "dirs/x-y/db-1.dump")}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("orphans:\n got %v\nwant %v", got, want)
	}
}
