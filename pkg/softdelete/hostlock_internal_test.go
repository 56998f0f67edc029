package softdelete

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// Property: the host lock keys of two instances, each reached through the
// layout as written or through a symlinked parent, with their directories
// present, partly moved away or absent, share a key exactly when they are
// the same instance. One instance always locks the same things, whatever
// path leads to it and whatever state it is in; two instances never lock
// each other.
func TestHostLock_KeysProperty(t *testing.T) {
	root := t.TempDir()
	real := filepath.Join(root, "real")
	link := filepath.Join(root, "link")
	require.NoError(t, os.MkdirAll(real, 0o755))
	require.NoError(t, os.Symlink(real, link))
	layout := func(base string) *instance.Layout {
		body := "app: lk\nname_pattern: '^[a-z0-9-]+$'\ncomponents:\n" +
			"  - name: data\n    type: dir\n    path: " + base + "/{name}/data\n" +
			"  - name: conf\n    type: file\n    path: " + base + "/etc/{name}.ini\n" +
			"  - name: db\n    type: postgresql\n    database: lk_{name}\n" +
			"  - name: unit\n    type: systemd_unit\n    unit: lk@{name}.service\n"
		l, err := instance.ParseLayout([]byte(body), base+".yml")
		require.NoError(t, err)
		return l
	}
	layouts := []*instance.Layout{layout(real), layout(link)}
	rapid.Check(t, func(t *rapid.T) {
		names := rapid.SampledFrom([]string{"a", "b", "a-b", "ab", "a-", "b-a"})
		a, b := names.Draw(t, "a"), names.Draw(t, "b")
		for _, n := range []string{a, b} {
			switch rapid.IntRange(0, 2).Draw(t, "state-"+n) {
			case 0:
				_ = os.RemoveAll(filepath.Join(real, n))
			case 1:
				_ = os.RemoveAll(filepath.Join(real, n, "data"))
				_ = os.MkdirAll(filepath.Join(real, n), 0o755)
			case 2:
				_ = os.MkdirAll(filepath.Join(real, n, "data"), 0o755)
			}
		}
		ka := instanceLockKeys(layouts[rapid.IntRange(0, 1).Draw(t, "la")], a)
		kb := instanceLockKeys(layouts[rapid.IntRange(0, 1).Draw(t, "lb")], b)
		shared := map[string]bool{}
		for _, k := range ka {
			shared[k.key] = true
		}
		var common []string
		for _, k := range kb {
			if shared[k.key] {
				common = append(common, k.locator)
			}
		}
		if a == b && len(common) != len(kb) {
			t.Fatalf("instance %s locks different things by two paths: %v vs %v", a, ka, kb)
		}
		if a != b && len(common) > 0 {
			t.Fatalf("instances %s and %s lock the same things: %s", a, b, strings.Join(common, ", "))
		}
	})
}
