package instancesoftdelete

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// Case 13 of "never the wrong instance": app B's /srv/{name} contains
// every instance of app A's /srv/a/{name}/data. Soft delete of "a" in B
// used to quarantine all of A. The module binary now refuses B, given
// the host's layouts directory holding A, before anything moves.
func TestSoftDelete_BinaryRefusesLayoutOverlappingLayoutsDir(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_soft_delete")
	a := fleettest.New(t, false, "acme", "globex")
	// B's {name} directory is A's application directory: B's instance
	// named after A's app holds every instance of A.
	bFile := filepath.Join(t.TempDir(), "b.yml")
	require.NoError(t, os.WriteFile(bFile, []byte("app: appb\ncomponents:\n  - name: site\n    type: dir\n    path: "+a.Root+"/srv/{name}\n"), 0o644))
	dir := t.TempDir()
	own, err := os.ReadFile(a.LayoutFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yml"), own, 0o644))
	before := map[string]fleettest.Snapshot{"acme": a.Snapshot(t, "acme"), "globex": a.Snapshot(t, "globex")}

	archives := filepath.Join(t.TempDir(), "archives")
	res, out := runModule(t, filepath.Join(lib, "instance_soft_delete"),
		map[string]any{"layout_file": bFile, "layouts_dir": dir, "name": a.App, "archive_dir": archives, "reason": "case 13"},
		[]string{"FLEETSAFE_SYSTEMD_DIR=" + a.SystemdDir}, "", nil)
	assert.Equal(t, true, res["failed"], out)
	assert.Equal(t, false, res["changed"], out)
	msg := res["msg"].(string)
	assert.Contains(t, msg, bFile+" line 5, key components[0].path")
	assert.Contains(t, msg, filepath.Join(dir, "a.yml")+" line ")
	assert.Contains(t, msg, "contains")
	for n, s := range before {
		assert.Equal(t, s, a.Snapshot(t, n), "instance %s of A untouched", n)
	}
	assert.DirExists(t, filepath.Join(a.Root, "srv", a.App))
	_, err = os.Stat(archives)
	assert.True(t, os.IsNotExist(err), "no archive directory written")

}

// The run-time double check stops a soft delete: another application's
// directory is a symbolic link into instance acme, so that application's
// instance "data" is acme's data. Deleting acme is refused before
// anything moves, naming both.
func TestSoftDelete_BinaryRefusesSharedLocationAtRunTime(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_soft_delete")
	f := fleettest.New(t, false, "acme")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "other.yml"), []byte("app: other\ncomponents:\n  - name: files\n    type: dir\n    path: "+f.Root+"/other/{name}\n"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(f.Root, "srv", f.App, "acme"), filepath.Join(f.Root, "other")))
	before := f.Snapshot(t, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res, out := runModule(t, filepath.Join(lib, "instance_soft_delete"),
		map[string]any{"layout_file": f.LayoutFile, "layouts_dir": dir, "name": "acme", "archive_dir": archives, "reason": "run-time check"},
		[]string{"FLEETSAFE_SYSTEMD_DIR=" + f.SystemdDir}, "", nil)
	assert.Equal(t, true, res["failed"], out)
	assert.Equal(t, false, res["changed"], out)
	assert.Contains(t, res["msg"], `instance "data" component files of app other`)
	assert.Equal(t, before, f.Snapshot(t, "acme"))
	// The archive directory may exist (soft delete locks there first);
	// no archive and no tombstone are written.
	var written []string
	_ = filepath.WalkDir(archives, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".tar.zst") || strings.HasSuffix(p, ".json")) {
			written = append(written, p)
		}
		return nil
	})
	assert.Empty(t, written)
}
