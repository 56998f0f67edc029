package main

import (
	"os"
	"path/filepath"
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
