package instance_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// Property: FindRuleCollision is exact on random backup rules (literals,
// '*', '?', '[ab]' and '/' around {name}) and name patterns. Soundness:
// every collision it reports is a real file that both rules match, each
// with a valid name. Completeness: a file built from rule A (wildcards
// filled at random) that rule B also matches with some valid name is
// always found to collide.
func TestRuleCollision_ExactProperty(t *testing.T) {
	toks := []string{"a", "b", "-", "*", "?", "[ab]", "/", "x"}
	patterns := []string{"[a-z]+", "[a-z0-9-]+", "[ab]", "a-?b?", "[ab]+"}
	fill := map[string][]string{"*": {"", "a", "-", "ab", "b-a", "x"}, "?": {"a", "b", "-", "x"}, "[ab]": {"a", "b"}}
	genRule := func(t *rapid.T, label string) ([]string, []string) {
		pre := []string{"/", "b", "k", "/"}
		for range rapid.IntRange(0, 3).Draw(t, label+"-pre") {
			pre = append(pre, rapid.SampledFrom(toks).Draw(t, label+"-pt"))
		}
		var suf []string
		for range rapid.IntRange(0, 3).Draw(t, label+"-suf") {
			suf = append(suf, rapid.SampledFrom(toks).Draw(t, label+"-st"))
		}
		return pre, append(suf, ".", "z")
	}
	join := func(pre, suf []string) string {
		return strings.Join(pre, "") + instance.Placeholder + strings.Join(suf, "")
	}
	expand := func(path, name string) string { return strings.Replace(path, instance.Placeholder, name, 1) }
	rapid.Check(t, func(t *rapid.T) {
		preA, sufA := genRule(t, "a")
		preB, sufB := genRule(t, "b")
		pathA, pathB := join(preA, sufA), join(preB, sufB)
		patA, patB := whole(rapid.SampledFrom(patterns).Draw(t, "pa")), whole(rapid.SampledFrom(patterns).Draw(t, "pb"))
		col, err := instance.FindRuleCollision(pathA, patA, pathB, patB)
		require.NoError(t, err)
		if col != nil {
			require.False(t, col.Undecided, "%s vs %s undecided", pathA, pathB)
			require.NoError(t, instance.ValidateName(col.NameA, patA), "%+v", col)
			require.NoError(t, instance.ValidateName(col.NameB, patB), "%+v", col)
			okA, _ := filepath.Match(expand(pathA, col.NameA), col.File)
			okB, _ := filepath.Match(expand(pathB, col.NameB), col.File)
			if !okA || !okB {
				t.Fatalf("reported collision is not one: %s (%s) and %s (%s) on %q: %v %v", pathA, col.NameA, pathB, col.NameB, col.File, okA, okB)
			}
		}
		// A file of rule A.
		nameA := rapid.SampledFrom([]string{"a", "b", "ab", "a-b", "ba", "aa", "x"}).Draw(t, "nameA")
		if instance.ValidateName(nameA, patA) != nil {
			return
		}
		var f strings.Builder
		for _, part := range [][]string{preA, {"\x00"}, sufA} {
			for _, tk := range part {
				switch {
				case tk == "\x00":
					f.WriteString(nameA)
				case fill[tk] != nil:
					f.WriteString(rapid.SampledFrom(fill[tk]).Draw(t, "fill"))
				default:
					f.WriteString(tk)
				}
			}
		}
		file := f.String()
		if ok, _ := filepath.Match(expand(pathA, nameA), file); !ok {
			return // a '*' filled across a '/' is no file of A
		}
		for i := 0; i < len(file); i++ {
			for j := i + 1; j <= len(file); j++ {
				nb := file[i:j]
				if instance.ValidateName(nb, patB) != nil {
					continue
				}
				if ok, _ := filepath.Match(expand(pathB, nb), file); ok && col == nil {
					t.Fatalf("%s (name %s) and %s (name %s) both match %q, and no collision was found", pathA, nameA, pathB, nb, file)
				}
			}
		}
	})
}

func writeRuleLayout(t *testing.T, dir, app, body string) string {
	t.Helper()
	f := filepath.Join(dir, app+".yml")
	require.NoError(t, os.WriteFile(f, []byte(body), 0o644))
	return f
}

// Two apps of one layouts_dir whose backup rules can match one file, and
// two components of one layout whose rules can: refused when loaded,
// naming file, line, key, value and an example file with its two names.
// A layout whose rules cannot collide loads. FINDINGS-1.md breaks 7, 8.
func TestRuleCollision_LayoutsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, app := range []string{"a", "b"} {
		writeRuleLayout(t, dir, app, fmt.Sprintf("app: app%s\nname_pattern: '^[a-z0-9]+$'\ncomponents:\n  - name: data\n    type: dir\n    path: /srv/%s/{name}/data\nbackups:\n  - component: data\n    path: /bk/{name}/data-*.tar.zst\n    format: tar_zst\n", app, app))
	}
	host, err := instance.LoadLayoutsDir(dir, false)
	require.NoError(t, err, "each layout alone is fine")
	l, err := instance.LoadLayoutFile(filepath.Join(dir, "a.yml"))
	require.NoError(t, err)
	err = l.WithHost(host)
	require.Error(t, err)
	var roe *instance.RuleOverlapError
	require.True(t, errors.As(err, &roe), "%v", err)
	assert.Contains(t, err.Error(), "line 9, key backups[0].path")
	assert.Contains(t, err.Error(), `"/bk/{name}/data-*.tar.zst"`)
	assert.Contains(t, err.Error(), "component data of appb")
	assert.Regexp(t, `/bk/[a-z0-9]+/data-[^ ]*\.tar\.zst is the backup of instance "[a-z0-9]+"`, err.Error())
	assert.Contains(t, roe.Hint(), "nothing was changed")

	one := t.TempDir()
	_, err = instance.LoadLayoutFile(writeRuleLayout(t, one, "w", "app: w\nname_pattern: '^[a-z0-9]+$'\ncomponents:\n"+
		"  - name: data\n    type: dir\n    path: /srv/w/{name}/data\n  - name: config\n    type: dir\n    path: /srv/w/{name}/etc\n"+
		"backups:\n  - component: data\n    path: /bk/{name}/data-*.tar.zst\n    format: tar_zst\n"+
		"  - component: config\n    path: /bk/{name}/*.tar.zst\n    format: tar_zst\n"))
	require.True(t, errors.As(err, &roe), "%v", err)
	assert.Contains(t, err.Error(), "component config")

	// A name that runs into another app's directory: /bk/{name}/x and
	// /bk/{name}-old/x never meet while names hold no '-'...
	_, err = instance.LoadLayoutFile(writeRuleLayout(t, one, "ok", "app: ok\nname_pattern: '^[a-z0-9]+$'\ncomponents:\n"+
		"  - name: data\n    type: dir\n    path: /srv/w/{name}/data\n  - name: config\n    type: dir\n    path: /srv/w/{name}/etc\n"+
		"backups:\n  - component: data\n    path: /bk/{name}/data-*.tar.zst\n    format: tar_zst\n"+
		"  - component: config\n    path: /bk/{name}-old/data-*.tar.zst\n    format: tar_zst\n"))
	require.NoError(t, err)
	// ...but do once they may.
	_, err = instance.LoadLayoutFile(writeRuleLayout(t, one, "ko", "app: ko\nname_pattern: '^[a-z0-9-]+$'\ncomponents:\n"+
		"  - name: data\n    type: dir\n    path: /srv/w/{name}/data\n  - name: config\n    type: dir\n    path: /srv/w/{name}/etc\n"+
		"backups:\n  - component: data\n    path: /bk/{name}/data-*.tar.zst\n    format: tar_zst\n"+
		"  - component: config\n    path: /bk/{name}-old/data-*.tar.zst\n    format: tar_zst\n"))
	require.True(t, errors.As(err, &roe), "%v", err)
	assert.Contains(t, err.Error(), `-old/data-`)
}
