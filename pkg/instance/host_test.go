package instance_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func dirLayout(app string, paths ...string) string {
	s := "app: " + app + "\ncomponents:\n"
	for i, p := range paths {
		s += "  - name: c" + string(rune('0'+i)) + "\n    type: dir\n    path: " + p + "\n"
	}
	return s
}

// Case 13 of "never the wrong instance": two layouts of one host could
// overlap. App A keeps /srv/a/{name}/data, app B /srv/{name}: soft delete
// of instance "a" of B quarantined every instance of A. Both layouts are
// now refused together, with an example.
func TestWithHost_RefusesOverlapAcrossLayouts(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "layouts.d")
	writeFile(t, filepath.Join(dir, "a.yml"), dirLayout("appa", root+"/srv/a/{name}/data"))
	bFile := filepath.Join(root, "b.yml")
	writeFile(t, bFile, dirLayout("appb", root+"/srv/{name}"))

	b, err := instance.LoadLayoutFile(bFile)
	require.NoError(t, err, "alone, B is fine")
	host, err := instance.LoadLayoutsDir(dir, false)
	require.NoError(t, err)
	err = b.WithHost(host)
	var oe *instance.OverlapError
	require.True(t, errors.As(err, &oe), "typed: %v", err)
	msg := err.Error()
	assert.Contains(t, msg, bFile+" line 5, key components[0].path")
	assert.Contains(t, msg, filepath.Join(dir, "a.yml")+" line 5, key components[0].path")
	assert.Contains(t, msg, `instance "a" component c0 of appb (`+root+`/srv/a) contains instance "a" component c0 of appa (`+root+`/srv/a/a/data)`)
	assert.Empty(t, b.Others)

	// And from A's side too.
	a := host[0]
	err = a.WithHost([]*instance.Layout{b})
	require.True(t, errors.As(err, &oe), "typed: %v", err)
}

func TestLoadLayoutsDir(t *testing.T) {
	root := t.TempDir()
	t.Run("missing default is no layouts, missing given is an error", func(t *testing.T) {
		ls, err := instance.LoadLayoutsDir(filepath.Join(root, "nope"), true)
		require.NoError(t, err)
		assert.Empty(t, ls)
		_, err = instance.LoadLayoutsDir(filepath.Join(root, "nope"), false)
		var he *instance.HostLayoutsError
		require.True(t, errors.As(err, &he), "%v", err)
		assert.NotEmpty(t, he.Hint())
	})
	t.Run("a file that does not parse is named, never skipped", func(t *testing.T) {
		dir := filepath.Join(root, "bad")
		writeFile(t, filepath.Join(dir, "a.yml"), dirLayout("appa", root+"/a/{name}"))
		writeFile(t, filepath.Join(dir, "b.yaml"), "app: appb\ncomponents:\n  - name: d\n    type: dir\n    path: relative/{name}\n")
		_, err := instance.LoadLayoutsDir(dir, true)
		var le *instance.LayoutError
		require.True(t, errors.As(err, &le), "%v", err)
		assert.Equal(t, filepath.Join(dir, "b.yaml"), le.File)
		assert.Equal(t, 5, le.Line)
		assert.Contains(t, err.Error(), "layouts_dir "+dir)
	})
	t.Run("dangling link with a layout name is an error", func(t *testing.T) {
		dir := filepath.Join(root, "dangling")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		require.NoError(t, os.Symlink(filepath.Join(root, "gone.yml"), filepath.Join(dir, "x.yml")))
		_, err := instance.LoadLayoutsDir(dir, true)
		require.Error(t, err)
		assert.Contains(t, err.Error(), filepath.Join(dir, "x.yml"))
	})
	t.Run("two files for one app", func(t *testing.T) {
		dir := filepath.Join(root, "dup")
		writeFile(t, filepath.Join(dir, "a.yml"), dirLayout("appa", root+"/a/{name}"))
		writeFile(t, filepath.Join(dir, "a2.yml"), dirLayout("appa", root+"/a2/{name}"))
		_, err := instance.LoadLayoutsDir(dir, true)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "already described by "+filepath.Join(dir, "a.yml"))
	})
	t.Run("other files are not layouts; the given app replaces its own file", func(t *testing.T) {
		dir := filepath.Join(root, "ok")
		writeFile(t, filepath.Join(dir, "a.yml"), dirLayout("appa", root+"/a/{name}"))
		writeFile(t, filepath.Join(dir, "README"), "not a layout {")
		writeFile(t, filepath.Join(dir, "a.yml~"), "not a layout {")
		writeFile(t, filepath.Join(dir, ".hidden.yml"), "not a layout {")
		ls, err := instance.LoadLayoutsDir(dir, false)
		require.NoError(t, err)
		require.Len(t, ls, 1)
		// The very file given as layout_file, or the same app: not an overlap.
		self, err := instance.LoadLayoutFile(filepath.Join(dir, "a.yml"))
		require.NoError(t, err)
		require.NoError(t, self.WithHost(ls))
		assert.Empty(t, self.Others)
		// The same app described differently: refused, naming both.
		stale, err := instance.ParseLayout([]byte(dirLayout("appa", root+"/elsewhere/{name}")), "stale.yml")
		require.NoError(t, err)
		err = stale.WithHost(ls)
		var le *instance.LayoutError
		require.True(t, errors.As(err, &le), "%v", err)
		assert.Contains(t, err.Error(), "stale.yml, key app")
		assert.Contains(t, err.Error(), filepath.Join(dir, "a.yml"))
		assert.Contains(t, err.Error(), root+"/elsewhere/{name}")
		other, err := instance.ParseLayout([]byte(dirLayout("appb", root+"/b/{name}")), "b.yml")
		require.NoError(t, err)
		require.NoError(t, other.WithHost(ls))
		assert.Len(t, other.Others, 1)
	})
	t.Run("examples load together", func(t *testing.T) {
		ls, err := instance.LoadLayoutsDir("../../examples/layouts", false)
		require.NoError(t, err)
		require.Len(t, ls, 2)
		require.NoError(t, instance.CheckLayouts(ls...))
	})
}

// Discovery double-checks at run time: a symbolic link in a parent
// directory makes instance "n" of app B live inside instance "x" of app A,
// which no template analysis can see. Both discovery and resolution refuse
// it, naming both.
func TestDiscover_RefusesSharedLocationsAtRunTime(t *testing.T) {
	root := t.TempDir()
	a, err := instance.ParseLayout([]byte(dirLayout("appa", root+"/a/{name}")), "a.yml")
	require.NoError(t, err)
	b, err := instance.ParseLayout([]byte(dirLayout("appb", root+"/b/{name}/data")), "b.yml")
	require.NoError(t, err)
	require.NoError(t, a.WithHost([]*instance.Layout{b}))
	require.NoError(t, b.WithHost([]*instance.Layout{a}))
	require.NoError(t, os.MkdirAll(root+"/a/x/n/data", 0o755))
	require.NoError(t, os.MkdirAll(root+"/a/y", 0o755))
	require.NoError(t, os.Symlink(root+"/a/x", root+"/b"))
	ctx := context.Background()

	for _, l := range []*instance.Layout{a, b} {
		_, err := l.Discover(ctx, instance.Options{SystemdDir: root + "/systemd"})
		var ce *instance.ClaimError
		require.True(t, errors.As(err, &ce), "%s: %v", l.App, err)
		assert.NotEmpty(t, ce.Hint())
		assert.Contains(t, err.Error(), `instance "x" component c0 of app appa (`+root+`/a/x)`)
		assert.Contains(t, err.Error(), `instance "n" component c0 of app appb (`+root+`/b/n/data, really `+root+`/a/x/n/data)`)
	}
	_, err = a.Resolve(ctx, "x", instance.Options{SystemdDir: root + "/systemd"})
	require.ErrorAs(t, err, new(*instance.ClaimError))
	_, err = b.Resolve(ctx, "n", instance.Options{SystemdDir: root + "/systemd"})
	require.ErrorAs(t, err, new(*instance.ClaimError))
	// Instance y of A shares nothing: it is found.
	inst, err := a.Resolve(ctx, "y", instance.Options{SystemdDir: root + "/systemd"})
	require.NoError(t, err)
	assert.Equal(t, "y", inst.Name)
}

// Case 1 at run time: a layout built in code (bypassing the parser) with
// overlapping components; discovery refuses the phantom instance instead
// of reporting it.
func TestDiscover_RefusesPhantomInstance(t *testing.T) {
	root := t.TempDir()
	mk := func(name, raw string) instance.Component {
		return instance.Component{Name: name, Type: instance.TypeDir, Template: tmpl(raw)}
	}
	l := &instance.Layout{Source: "code", App: "x", NamePattern: whole(instance.DefaultNamePattern),
		Components: []instance.Component{mk("data", root+"/x/{name}"), mk("files", root+"/x/{name}-data")}}
	require.Error(t, instance.CheckLayouts(l))
	require.NoError(t, os.MkdirAll(root+"/x/acme", 0o755))
	require.NoError(t, os.MkdirAll(root+"/x/acme-data", 0o755))
	_, err := l.Discover(context.Background(), instance.Options{SystemdDir: root + "/systemd"})
	require.ErrorAs(t, err, new(*instance.ClaimError))
	assert.Contains(t, err.Error(), `instance "acme" component files of app x (`+root+`/x/acme-data)`)
	assert.Contains(t, err.Error(), `instance "acme-data" component data of app x (`+root+`/x/acme-data)`)
	_, err = l.Resolve(context.Background(), "acme-data", instance.Options{SystemdDir: root + "/systemd"})
	require.ErrorAs(t, err, new(*instance.ClaimError))
}

// TestDiscover_RunTimeCheckProperty: for random layouts built in code
// (overlapping or not) and random directories on disk, discovery either
// refuses, or returns instances of which no two (instance, component)
// pairs share a locator or contain one another. And when the layout
// passes the load-time analysis, discovery never refuses (no symbolic
// links here): the two checks agree.
func TestDiscover_RunTimeCheckProperty(t *testing.T) {
	refused, found := 0, 0
	rapid.Check(t, func(rt *rapid.T) {
		root, err := os.MkdirTemp("", "fsprop")
		require.NoError(rt, err)
		defer os.RemoveAll(root)
		lit := rapid.SampledFrom([]string{"", "", "a", "x-", "-d"})
		tail := rapid.SampledFrom([]string{"", "", "/d", "/x-d"})
		n := rapid.IntRange(1, 3).Draw(rt, "components")
		l := &instance.Layout{Source: "code", App: "x", NamePattern: whole(`[a-z][a-z-]{0,5}`)}
		seen := map[string]bool{}
		for i := range n {
			raw := root + "/s/" + lit.Draw(rt, "pre") + instance.Placeholder + lit.Draw(rt, "suf") + tail.Draw(rt, "tail")
			if seen[raw] {
				continue
			}
			seen[raw] = true
			l.Components = append(l.Components, instance.Component{Name: "c" + string(rune('0'+i)), Type: instance.TypeDir, Template: tmpl(raw)})
		}
		for _, name := range rapid.SliceOfN(rapid.SampledFrom([]string{"a", "b", "a-d", "x-a", "ad", "a-d-d"}), 1, 4).Draw(rt, "names") {
			c := l.Components[rapid.IntRange(0, len(l.Components)-1).Draw(rt, "which")]
			require.NoError(rt, os.MkdirAll(c.Template.Expand(name), 0o755))
		}
		static := instance.CheckLayouts(l)
		insts, err := l.Discover(context.Background(), instance.Options{SystemdDir: root + "/systemd", SkipSizes: true})
		if err != nil {
			refused++
			require.ErrorAs(rt, err, new(*instance.ClaimError))
			require.Error(rt, static, "discovery refused (%v) a layout the analysis accepts", err)
			return
		}
		if len(insts) > 1 {
			found++
		}
		type pair struct{ inst, comp string }
		locs := map[string]pair{}
		for _, in := range insts {
			for _, c := range in.Components {
				if p, dup := locs[c.Locator]; dup {
					rt.Fatalf("%v and %v both denote %s", p, pair{in.Name, c.Name}, c.Locator)
				}
				locs[c.Locator] = pair{in.Name, c.Name}
			}
		}
		for loc, p := range locs {
			for q, o := range locs {
				if strings.HasPrefix(loc, q+"/") {
					rt.Fatalf("%v (%s) contains %v (%s)", o, q, p, loc)
				}
			}
		}
	})
	assert.Positive(t, refused, "some runs must be refused")
	assert.Positive(t, found, "some runs must find several instances")
}
