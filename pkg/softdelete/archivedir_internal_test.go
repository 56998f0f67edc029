package softdelete

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// Property: an archive_dir is refused exactly when it lies inside, or
// contains, a path component of some instance of some layout of the host,
// however either side is reached: the layout given or another app's,
// templates written through a symlinked parent or not, archive_dir given
// by its real path or through a link, an instance whose {name} element is
// a symbolic link to a directory elsewhere. FINDINGS-1.md breaks 1 and 2.
func TestArchiveDir_RefusedExactlyInsideAnyInstanceProperty(t *testing.T) {
	root := t.TempDir()
	real, link := filepath.Join(root, "real"), filepath.Join(root, "link")
	for _, d := range []string{"alpha/acme/data", "alpha/acme/other", "beta/bob-x/conf", "beta/bob-x/conf2", "elsewhere/carol/data"} {
		require.NoError(t, os.MkdirAll(filepath.Join(real, d), 0o755))
	}
	require.NoError(t, os.Symlink(real, link))
	require.NoError(t, os.Symlink(filepath.Join(real, "elsewhere/carol"), filepath.Join(real, "alpha/carol")))
	parse := func(app, body string) *instance.Layout {
		l, err := instance.ParseLayout([]byte("app: "+app+"\nname_pattern: '^[a-z]+$'\ncomponents:\n"+body), app+".yml")
		require.NoError(t, err)
		return l
	}
	bases := []string{real, link}
	inside := []string{
		"{b}/alpha/acme/data/archives", "{b}/alpha/acme/data", "{b}/beta/bob-x/conf/a/b",
		"{b}/alpha", "{b}/beta", "{b}/alpha/zed", // contain every instance, or a name-shaped entry
		"{r}/elsewhere/carol/data/archives", "{r}/elsewhere/carol", // carol, through its link
	}
	outside := []string{
		"{r}/archives", "{b}/alpha/acme/other/archives", "{b}/beta/bob-x/conf2", "{b}/beta/bob/conf",
		"{r}/elsewhere/dave", root + "/archives",
	}
	expand := func(t *rapid.T, s string) string {
		b := rapid.SampledFrom(bases).Draw(t, "archive-base")
		r := map[bool]string{true: real, false: link}[rapid.Bool().Draw(t, "real")]
		out := ""
		for i := 0; i < len(s); i++ {
			switch {
			case len(s) >= i+3 && s[i:i+3] == "{b}":
				out += b
				i += 2
			case len(s) >= i+3 && s[i:i+3] == "{r}":
				out += r
				i += 2
			default:
				out += string(s[i])
			}
		}
		return out
	}
	rapid.Check(t, func(t *rapid.T) {
		alpha := parse("alpha", "  - name: data\n    type: dir\n    path: "+rapid.SampledFrom(bases).Draw(t, "alpha-base")+"/alpha/{name}/data\n")
		beta := parse("beta", "  - name: conf\n    type: dir\n    path: "+rapid.SampledFrom(bases).Draw(t, "beta-base")+"/beta/{name}-x/conf\n")
		given, other := alpha, beta
		if rapid.Bool().Draw(t, "given-beta") {
			given, other = beta, alpha
		}
		require.NoError(t, given.WithHost([]*instance.Layout{other}))
		isInside := rapid.Bool().Draw(t, "inside")
		pool := outside
		if isInside {
			pool = inside
		}
		dir := expand(t, rapid.SampledFrom(pool).Draw(t, "archive_dir"))
		err := checkArchiveDir(given, "acme", dir)
		if isInside && err == nil {
			t.Fatalf("archive_dir %s overlaps an instance's component and was accepted (layout %s given)", dir, given.App)
		}
		if !isInside && err != nil {
			t.Fatalf("archive_dir %s overlaps nothing and was refused: %v", dir, err)
		}
	})
}
