package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// Property: with backup directories and files linked to one another at
// random (a file of one instance linking to another's, an instance's
// whole directory linking to another's, links to the same instance's own
// files), a file credited to an instance is always a real file in that
// instance's own location, reached without a link; every real file there
// is credited to it; and every link leading elsewhere is reported to the
// instance whose location holds it, never silently dropped nor credited.
// FINDINGS-1.md break 3.
func TestOwners_LinksAreNeverCreditedProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		root, err := os.MkdirTemp("", "fsowner")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(root)
		l, err := instance.ParseLayout([]byte(fmt.Sprintf("app: lnk\nname_pattern: '^[a-c]$'\ncomponents:\n  - name: data\n    type: dir\n    path: %[1]s/srv/{name}\nbackups:\n  - component: data\n    path: %[1]s/bk/{name}/data-*.tar.zst\n    format: any\n", root)), "lnk.yml")
		if err != nil {
			t.Fatal(err)
		}
		names := []string{"a", "b", "c"}
		bk := func(n string) string { return filepath.Join(root, "bk", n) }
		realFiles := map[string][]string{}
		dirLinked := map[string]bool{}
		for _, n := range names {
			if rapid.IntRange(0, 3).Draw(t, "dir-"+n) == 0 {
				continue // made a link below, or absent
			}
			if err := os.MkdirAll(bk(n), 0o755); err != nil {
				t.Fatal(err)
			}
			for k := range rapid.IntRange(0, 2).Draw(t, "files-"+n) {
				p := filepath.Join(bk(n), fmt.Sprintf("data-%d.tar.zst", k))
				if err := os.WriteFile(p, []byte(n), 0o644); err != nil {
					t.Fatal(err)
				}
				realFiles[n] = append(realFiles[n], p)
			}
		}
		for _, n := range names {
			if _, err := os.Lstat(bk(n)); err != nil && rapid.Bool().Draw(t, "dirlink-"+n) {
				to := rapid.SampledFrom(names).Draw(t, "dirlink-to-"+n)
				if to != n {
					_ = os.Symlink(bk(to), bk(n))
					dirLinked[n] = true
				}
			}
		}
		// File links inside real directories, to any real file.
		var all []string
		for _, n := range names {
			all = append(all, realFiles[n]...)
		}
		linkedElsewhere := map[string]bool{}
		for _, n := range names {
			if len(all) == 0 || dirLinked[n] || len(realFiles[n]) == 0 && rapid.Bool().Draw(t, "skip-"+n) {
				continue
			}
			if fi, err := os.Lstat(bk(n)); err != nil || !fi.IsDir() {
				continue
			}
			for k := range rapid.IntRange(0, 2).Draw(t, "links-"+n) {
				target := rapid.SampledFrom(all).Draw(t, "link-target")
				p := filepath.Join(bk(n), fmt.Sprintf("data-l%d.tar.zst", k))
				if err := os.Symlink(target, p); err != nil {
					t.Fatal(err)
				}
				if filepath.Dir(target) != bk(n) {
					linkedElsewhere[n] = true
				}
			}
		}
		o := findOwners(l, names, nil)
		for _, n := range names {
			own, amb := o.filesOf(0, n)
			var got []string
			for _, f := range own {
				if real, err := filepath.EvalSymlinks(f.path); err != nil || real != f.path || filepath.Dir(f.path) != bk(n) {
					t.Fatalf("%s is credited with %s, which is not a real file of its own location (really %s, %v)", n, f.path, real, err)
				}
				got = append(got, f.path)
			}
			for _, want := range realFiles[n] {
				if !slices.Contains(got, want) {
					t.Fatalf("%s's own backup %s is not credited to it: %v", n, want, got)
				}
			}
			reported := false
			for _, a := range amb {
				if a.link == "" {
					t.Fatalf("%s: a file without link and one candidate is ambiguous: %+v", n, a)
				}
				reported = true
			}
			if (linkedElsewhere[n] || dirLinked[n] && len(realFiles[rapidTarget(bk(n))]) > 0) && !reported {
				t.Fatalf("%s's location holds a link to another instance's backup, and nothing says so", n)
			}
		}
	})
}

// rapidTarget returns the instance name a linked backup directory leads to.
func rapidTarget(dir string) string {
	t, err := os.Readlink(dir)
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}
