package instance_test

import (
	"os"
	"strings"
	"testing"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// FuzzParseLayout: any input is a layout or an error naming the source;
// an accepted layout only has absolute, clean component paths with one
// {name}.
func FuzzParseLayout(f *testing.F) {
	for _, p := range []string{"../../examples/layouts/tracim.yml", "../../examples/layouts/nextcloud.yml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(goodLayout))
	f.Add([]byte("app: x\ncomponents:\n  - {name: d, type: dir, path: /srv/x/{name}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := instance.ParseLayout(data, "fuzz.yml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "layout fuzz.yml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, c := range l.Components {
			if strings.Count(c.Template.Raw, instance.Placeholder) != 1 {
				t.Fatalf("component %s accepted without exactly one {name}: %q", c.Name, c.Template.Raw)
			}
			if c.IsPath() && (!strings.HasPrefix(c.Template.Raw, "/") || strings.Contains(c.Template.Raw, "..") || strings.ContainsAny(c.Template.Raw, "*?[")) {
				t.Fatalf("unsafe path accepted: %q", c.Template.Raw)
			}
		}
		for _, r := range l.Backups {
			if _, ok := l.Component(r.Component); !ok {
				t.Fatalf("rule for unknown component %q accepted", r.Component)
			}
		}
		// An accepted layout lets no two (instance, component) pairs
		// denote the same locator or contain one another (short names).
		claimed := map[string]string{}
		for _, n := range bruteNames("ax-0", 3, l.NamePattern) {
			for _, c := range l.Components {
				loc := c.Family() + ":" + c.Template.Expand(n)
				who := n + "/" + c.Name
				if prev, dup := claimed[loc]; dup {
					t.Fatalf("accepted layout: %s and %s both denote %s", prev, who, loc)
				}
				claimed[loc] = who
			}
		}
		for loc, who := range claimed {
			for p := loc; strings.HasPrefix(loc, "path:") && strings.Contains(p, "/"); {
				p = p[:strings.LastIndex(p, "/")]
				if prev, ok := claimed[p]; ok {
					t.Fatalf("accepted layout: %s (%s) contains %s (%s)", prev, p, who, loc)
				}
			}
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"26h", "2d", "1d12h", "90m", "1w", "0.5h", "", "h", "9999999999999w", "1.2.3h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := instance.ParseDuration(s)
		if err == nil && d <= 0 {
			t.Fatalf("%q accepted as %v", s, d)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1KiB", "2MB", "512", "1.5GiB", "10 MiB", "", "KiB", "1e400", "99999999999TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := instance.ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("%q accepted as %d", s, n)
		}
	})
}

// FuzzValidateName: whatever name is accepted is one exact, safe name.
func FuzzValidateName(f *testing.F) {
	l, err := instance.ParseLayout([]byte("app: x\nname_pattern: '.*'\ncomponents:\n  - name: d\n    type: dir\n    path: /srv/x/{name}\n"), "f.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"acme", "a*", "../x", "a b", "", ".", "caf\u00e9", "a\x00b", "-rf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if l.ValidateName(name) != nil {
			return
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\*?[]{} \t\n\x00") || strings.HasPrefix(name, ".") {
			t.Fatalf("unsafe name accepted: %q", name)
		}
	})
}
