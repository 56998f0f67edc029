package instance_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

func tmpl(raw string) instance.Template {
	i := strings.Index(raw, instance.Placeholder)
	return instance.Template{Raw: raw, Prefix: raw[:i], Suffix: raw[i+len(instance.Placeholder):]}
}

func whole(p string) *regexp.Regexp { return regexp.MustCompile(`^(?:` + p + `)$`) }

// bruteNames lists every string over alphabet up to maxLen runes that
// is a valid instance name under pattern.
func bruteNames(alphabet string, maxLen int, pattern *regexp.Regexp) []string {
	var out []string
	cur := []string{""}
	for n := 1; n <= maxLen; n++ {
		var next []string
		for _, p := range cur {
			for _, r := range alphabet {
				s := p + string(r)
				next = append(next, s)
				if instance.ValidateName(s, pattern) == nil {
					out = append(out, s)
				}
			}
		}
		cur = next
	}
	return out
}

// bruteCollision finds two names whose locators are equal or, for paths,
// one contains the other.
func bruteCollision(a, b instance.LocatorTemplate, paths bool, names func(*regexp.Regexp) []string) (string, string, bool) {
	byLoc := map[string]string{}
	for _, n := range names(a.Pattern) {
		byLoc[a.Template.Expand(n)] = n
	}
	for _, m := range names(b.Pattern) {
		lb := b.Template.Expand(m)
		if n, ok := byLoc[lb]; ok {
			return n, m, true
		}
		if !paths {
			continue
		}
		for i := 1; i < len(lb); i++ { // a contains b
			if lb[i] == '/' {
				if n, ok := byLoc[lb[:i]]; ok {
					return n, m, true
				}
			}
		}
		for la, n := range byLoc { // b contains a
			if strings.HasPrefix(la, lb+"/") {
				return n, m, true
			}
		}
	}
	return "", "", false
}

func checkCollision(t interface {
	Fatalf(string, ...any)
}, a, b instance.LocatorTemplate, paths bool, c *instance.Collision) {
	if c.Undecided {
		t.Fatalf("undecided for %q and %q", a.Template.Raw, b.Template.Raw)
	}
	if err := instance.ValidateName(c.NameA, a.Pattern); err != nil {
		t.Fatalf("example name A: %v (%+v)", err, c)
	}
	if err := instance.ValidateName(c.NameB, b.Pattern); err != nil {
		t.Fatalf("example name B: %v (%+v)", err, c)
	}
	la, lb := a.Template.Expand(c.NameA), b.Template.Expand(c.NameB)
	if la != c.LocatorA || lb != c.LocatorB {
		t.Fatalf("locators %q %q do not expand from the names (%+v)", la, lb, c)
	}
	switch c.Relation {
	case instance.Same:
		if la != lb {
			t.Fatalf("%q != %q", la, lb)
		}
	case instance.AContains:
		if !paths || !strings.HasPrefix(lb, la+"/") {
			t.Fatalf("%q does not contain %q", la, lb)
		}
	case instance.BContains:
		if !paths || !strings.HasPrefix(la, lb+"/") {
			t.Fatalf("%q does not contain %q", lb, la)
		}
	}
}

var propPatterns = []string{
	`[a-z]+`, `[a-x-]{1,3}`, `x[a-z]*`, `[ax-]+`, `a|b|x-a|a-x`, `(?i)A+`, `[^-]+`, `\w+`, `.*`, `a\b.*`, `[a-z]+-?`,
	`^a.$`, `.-.`, `(?:x-)?a`, `[[:alpha:]]+`, `\pL+`, `[^a]*`, `b*`,
}

// TestFindCollision_Property: for random template pairs, "no overlap"
// means that no pair of names (brute force over short names) collides,
// and an overlap comes with an example pair of names that really
// collides.
func TestFindCollision_Property(t *testing.T) {
	const alphabet = "ax-b."
	cache := map[string][]string{}
	names := func(p *regexp.Regexp) []string {
		k := p.String()
		if _, ok := cache[k]; !ok {
			cache[k] = bruteNames(alphabet, 4, p)
		}
		return cache[k]
	}
	lit := rapid.SampledFrom([]string{"", "", "a", "x", "-", "x-", "-a", "a-x", "."})
	elem := rapid.SampledFrom([]string{"a", "x", "a-x", "x-a"})
	genPath := func(t *rapid.T, label string) string {
		var b strings.Builder
		for range rapid.IntRange(0, 2).Draw(t, label+"-before") {
			b.WriteString("/" + elem.Draw(t, label+"-elem"))
		}
		b.WriteString("/" + lit.Draw(t, label+"-pre") + instance.Placeholder + lit.Draw(t, label+"-suf"))
		for range rapid.IntRange(0, 2).Draw(t, label+"-after") {
			b.WriteString("/" + elem.Draw(t, label+"-elem"))
		}
		return b.String()
	}
	genName := func(t *rapid.T, label string) string {
		return rapid.SampledFrom([]string{"", "a", "a_", "x-a"}).Draw(t, label+"-pre") + instance.Placeholder +
			rapid.SampledFrom([]string{"", "a", "_x", "-", ".x"}).Draw(t, label+"-suf")
	}
	overlaps := 0
	rapid.Check(t, func(t *rapid.T) {
		paths := rapid.Bool().Draw(t, "paths")
		gen := genName
		if paths {
			gen = genPath
		}
		a := instance.LocatorTemplate{Template: tmpl(gen(t, "a")), Pattern: whole(rapid.SampledFrom(propPatterns).Draw(t, "pa"))}
		b := instance.LocatorTemplate{Template: tmpl(gen(t, "b")), Pattern: whole(rapid.SampledFrom(propPatterns).Draw(t, "pb"))}
		c, err := instance.FindCollision(a, b, paths)
		if err != nil {
			t.Fatalf("%v", err)
		}
		if c != nil {
			overlaps++
			checkCollision(t, a, b, paths, c)
			return
		}
		if n, m, ok := bruteCollision(a, b, paths, names); ok {
			t.Fatalf("analysis says %q and %q never overlap, but names %q and %q give %q and %q",
				a.Template.Raw, b.Template.Raw, n, m, a.Template.Expand(n), b.Template.Expand(m))
		}
	})
	assert.Positive(t, overlaps, "the generator must produce overlaps too")
}

// TestFindCollision_SelfNeverCollides: one template with two different
// names never gives the same locator, nor one containing the other.
func TestFindCollision_SelfNeverCollides(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		raw := rapid.SampledFrom([]string{"/srv/x/{name}", "/srv/x-{name}/a", "/srv/{name}-x", "/a/{name}.d/b/c"}).Draw(t, "t")
		tp := tmpl(raw)
		n := rapid.StringMatching(`[a-z.-]{1,5}`).Draw(t, "n")
		m := rapid.StringMatching(`[a-z.-]{1,5}`).Draw(t, "m")
		if n == m || instance.ValidateName(n, nil) != nil || instance.ValidateName(m, nil) != nil {
			return
		}
		ln, lm := tp.Expand(n), tp.Expand(m)
		if ln == lm || strings.HasPrefix(ln, lm+"/") || strings.HasPrefix(lm, ln+"/") {
			t.Fatalf("%s: %q and %q collide", raw, n, m)
		}
	})
}

func TestFindCollision_Examples(t *testing.T) {
	def := whole(instance.DefaultNamePattern)
	lt := func(raw string) instance.LocatorTemplate {
		return instance.LocatorTemplate{Template: tmpl(raw), Pattern: def}
	}
	cases := []struct {
		a, b    string
		paths   bool
		overlap bool
	}{
		{"/srv/x/{name}", "/srv/x/{name}-data", true, true},
		{"/srv/x/{name}", "/srv/x/{name}/data", true, true},
		{"/srv/x-{name}", "/srv/{name}", true, true},
		{"/srv/a/{name}/data", "/srv/{name}", true, true},
		{"/srv/tracim/{name}/etc", "/srv/tracim/{name}/data", true, false},
		{"/srv/tracim/{name}/etc", "/var/www/nextcloud-{name}", true, false},
		{"/srv/x/{name}.d", "/srv/x/{name}", true, false}, // '.' is outside the default pattern
		{"/srv/x/{name}_d", "/srv/x/{name}", true, false},
		{"tracim_{name}", "nextcloud_{name}", false, false},
		{"app_{name}", "app_{name}_old", false, false}, // '_' is outside the default pattern
		{"tracim@{name}.service", "tracim@{name}-worker.service", false, true},
	}
	for _, c := range cases {
		col, err := instance.FindCollision(lt(c.a), lt(c.b), c.paths)
		require.NoError(t, err)
		if !c.overlap {
			assert.Nil(t, col, "%s vs %s: %+v", c.a, c.b, col)
			continue
		}
		if assert.NotNil(t, col, "%s vs %s", c.a, c.b) {
			checkCollision(t, lt(c.a), lt(c.b), c.paths, col)
		}
	}
}

// Case 1 of "never the wrong instance": overlapping templates in one
// layout were accepted; discovery reported a phantom acme-data and soft
// delete of acme-data quarantined acme's data.
func TestParseLayout_RefusesOverlappingComponents(t *testing.T) {
	for _, c := range []struct{ name, second, want string }{
		{"suffix", "/srv/x/{name}-data", `instance "acme" component files (/srv/x/acme-data) and instance "a-data"`},
		{"nested", "/srv/x/{name}/data", "contains"},
		{"prefix", "/srv/x/data-{name}", "both denote /srv/x/data-"},
		{"duplicate", "/srv/x/{name}", "same template"},
	} {
		t.Run(c.name, func(t *testing.T) {
			y := "app: x\ncomponents:\n  - name: data\n    type: dir\n    path: /srv/x/{name}\n  - name: files\n    type: dir\n    path: " + c.second + "\n"
			_, err := instance.ParseLayout([]byte(y), "/etc/fleetsafe/x.yml")
			require.Error(t, err)
			var oe *instance.OverlapError
			require.True(t, errors.As(err, &oe), "typed: %v", err)
			assert.NotEmpty(t, oe.Hint())
			msg := err.Error()
			assert.Contains(t, msg, "/etc/fleetsafe/x.yml line 5, key components[0].path")
			assert.Contains(t, msg, "line 8, key components[1].path")
			assert.Contains(t, msg, c.second)
			if c.name != "suffix" {
				assert.Contains(t, msg, c.want)
			} else {
				assert.Regexp(t, `instance "([a-z0-9-]+)-data" component data \(/srv/x/([a-z0-9-]+)-data\) and instance "([a-z0-9-]+)" component files \(/srv/x/([a-z0-9-]+)-data\)|both denote /srv/x/[a-z0-9-]+-data`, msg)
			}
		})
	}
}

// Case 2: a bare {name} database made every database of the server an
// instance; duplicate database components were accepted.
func TestParseLayout_RefusesForeignNamespaces(t *testing.T) {
	base := "app: x\ncomponents:\n  - name: data\n    type: dir\n    path: /srv/x/{name}\n"
	for _, c := range []struct{ name, comp, key, want string }{
		{"bare db", "  - name: db\n    type: postgresql\n    database: '{name}'\n", "components[1].database", "literal prefix"},
		{"db suffix only", "  - name: db\n    type: postgresql\n    database: '{name}_db'\n", "components[1].database", "literal prefix"},
		{"db glued prefix", "  - name: db\n    type: postgresql\n    database: x{name}\n", "components[1].database", "must end with '_'"},
		{"db quarantine", "  - name: db\n    type: postgresql\n    database: fstrash_{name}\n", "components[1].database", "quarantined"},
		{"bare unit", "  - name: svc\n    type: systemd_unit\n    unit: '{name}.service'\n", "components[1].unit", "literal prefix"},
		{"unit no type", "  - name: svc\n    type: systemd_unit\n    unit: x@{name}\n", "components[1].unit", "unit type"},
		{"unit glued", "  - name: svc\n    type: systemd_unit\n    unit: x{name}.service\n", "components[1].unit", "separator"},
		{"dup db", "  - name: db\n    type: postgresql\n    database: x_{name}\n  - name: db2\n    type: postgresql\n    database: x_{name}\n", "components[1].database", "same template"},
		{"overlapping db", "  - name: db\n    type: postgresql\n    database: x_{name}\n  - name: db2\n    type: postgresql\n    database: x_a_{name}\n", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := instance.ParseLayout([]byte(base+c.comp), "x.yml")
			if c.name == "overlapping db" {
				// '_' is outside the default name pattern: x_a_n is no x_{name}.
				require.NoError(t, err)
				_, err = instance.ParseLayout([]byte("name_pattern: '[a-z_]+'\n"+base+c.comp), "x.yml")
				require.Error(t, err)
				assert.Contains(t, err.Error(), "both denote x_a_")
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.key)
			assert.Contains(t, err.Error(), c.want)
			var le *instance.LayoutError
			var oe *instance.OverlapError
			assert.True(t, errors.As(err, &le) || errors.As(err, &oe), "typed: %v", err)
		})
	}
}

// A name whose database would be longer than PostgreSQL keeps is refused:
// the server would cut it to another instance's database name.
func TestValidateName_DatabaseTruncation(t *testing.T) {
	l, err := instance.ParseLayout([]byte("app: x\ncomponents:\n  - name: db\n    type: postgresql\n    database: tracim_{name}\n"), "x.yml")
	require.NoError(t, err)
	long := strings.Repeat("a", 57) // tracim_ + 57 = 64 bytes
	err = l.ValidateName(long)
	var ie *instance.InvalidNameError
	require.True(t, errors.As(err, &ie), "%v", err)
	assert.Contains(t, err.Error(), "63 bytes")
	require.NoError(t, l.ValidateName(long[:56]))
}

// When the analysis cannot decide within its bounds (a name_pattern whose
// automaton has more states than it may build), the layout is refused,
// never accepted on a guess.
func TestCheckLayouts_UndecidedIsRefused(t *testing.T) {
	y := "app: x\nname_pattern: '(a|b)*a(a|b){14}'\ncomponents:\n  - name: d\n    type: dir\n    path: /srv/w/{name}\n" +
		"  - name: e\n    type: dir\n    path: /srv/w/{name}c\n"
	_, err := instance.ParseLayout([]byte(y), "x.yml")
	var oe *instance.OverlapError
	require.True(t, errors.As(err, &oe), "%v", err)
	require.NotNil(t, oe.Collision)
	assert.True(t, oe.Collision.Undecided)
	assert.Contains(t, err.Error(), "could not prove")
	assert.Contains(t, err.Error(), "x.yml line 6, key components[0].path")
}

// The quarantine's own places are no layout's: a template inside
// .fleetsafe-trash would take quarantined components of another
// application for instances.
func TestParseLayout_RefusesQuarantinePlaces(t *testing.T) {
	_, err := instance.ParseLayout([]byte("app: x\ncomponents:\n  - name: d\n    type: dir\n    path: /srv/x/.fleetsafe-trash/{name}\n"), "x.yml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "x.yml line 5, key components[0].path")
	assert.Contains(t, err.Error(), "quarantines")
	_, err = instance.ParseLayout([]byte("app: x\ncomponents:\n  - name: d\n    type: dir\n    path: /srv/x/.fleetsafe-trash{name}\n"), "x.yml")
	require.Error(t, err)
}

func TestParseLayout_RefusesHiddenNameElement(t *testing.T) {
	_, err := instance.ParseLayout([]byte("app: x\ncomponents:\n  - name: d\n    type: dir\n    path: /srv/x/.fleetsafe-{name}\n"), "x.yml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "x.yml line 5, key components[0].path")
	assert.Contains(t, err.Error(), "hidden entries")
}
