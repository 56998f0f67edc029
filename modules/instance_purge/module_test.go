package instancepurge

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

func TestPurge_Module(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(context.Background(), f.Layout, softdelete.Request{Name: "acme", ArchiveDir: archives,
		Reason: "x", RetentionDays: 30, Options: f.Options()})
	require.NoError(t, err)
	out := Module.Call(context.Background(), map[string]any{"layout_file": f.LayoutFile, "archive_dir": archives})
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, false, out["changed"], "nothing is due before retention")

	out = Module.Call(context.Background(), map[string]any{"layout_file": f.LayoutFile, "archive_dir": archives, "keep_last": "0"})
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], "keep_last below 1 is only accepted together with an explicit name")

	// keep_last 0 never shortens retention: the archive of a deletion made
	// seconds ago is kept, in check mode and for real.
	for _, check := range []bool{true, false} {
		out = Module.Call(context.Background(), map[string]any{"layout_file": f.LayoutFile, "archive_dir": archives, "name": "acme", "keep_last": "0",
			"_ansible_check_mode": check})
		require.Equal(t, false, out["failed"], out["msg"])
		assert.Equal(t, false, out["changed"])
		assert.Empty(t, out["purged"])
		kept, _ := out["kept"].([]softdelete.Kept)
		var held bool
		for _, k := range kept {
			if k.Path == res.Archive.Path && k.Until != nil && k.Until.Equal(res.Tombstone.PurgeAfter) {
				held = true
			}
		}
		assert.True(t, held, "the archive is kept until purge_after: %v", out["kept"])
	}
	_, err = os.Stat(res.Archive.Path)
	require.NoError(t, err)
}

// A refused item fails the task, is listed under refused and never under
// purged, and changed stays false when nothing was removed.
func TestPurge_ModuleRefusedIsNotPurged(t *testing.T) {
	f := fleettest.New(t, false, "acme", "globex")
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(context.Background(), f.Layout, softdelete.Request{Name: "acme", ArchiveDir: archives,
		Reason: "x", RetentionDays: 1, Options: f.Options()})
	require.NoError(t, err)
	other := f.Snapshot(t, "globex")
	var data string
	for _, m := range res.Quarantined {
		if m.Component == "data" {
			data = m.To
		}
	}
	entry := filepath.Dir(data)
	require.NoError(t, os.Rename(entry, entry+".real"))
	require.NoError(t, os.Symlink(filepath.Dir(f.Path("data", "globex")), entry))

	// The module reads the clock: make the deletion old enough.
	ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	ts.PurgeAfter = time.Now().Add(-time.Hour)
	raw, err := json.Marshal(ts)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(res.Tombstone.Path, raw, 0o600))

	out := Module.Call(context.Background(), map[string]any{"layout_file": f.LayoutFile, "archive_dir": archives})
	assert.Equal(t, true, out["failed"])
	assert.Equal(t, false, out["changed"], "nothing was removed")
	assert.Empty(t, out["purged"], "a refused item is never listed as purged")
	refused, _ := out["refused"].([]softdelete.Refused)
	require.NotEmpty(t, refused)
	assert.Contains(t, out["msg"], entry)
	assert.Contains(t, out["msg"], "this run removed nothing")
	assert.Equal(t, other, f.Snapshot(t, "globex"))
}

// Purge checks what it removes against the host's layouts: without a
// layout of the deletion's app (no layout_file, and layouts_dir without
// it), the quarantine is refused and untouched; with the app's layout in
// layouts_dir, the same purge removes it. A layout given restricts the
// purge to its app. FINDINGS-1.md break 6.
func TestPurge_ModuleChecksQuarantinesAgainstTheHostsLayouts(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(context.Background(), f.Layout, softdelete.Request{Name: "acme", ArchiveDir: archives,
		Reason: "x", RetentionDays: 0, Options: f.Options()})
	require.NoError(t, err)
	empty := t.TempDir()
	out := Module.Call(context.Background(), map[string]any{"archive_dir": archives, "layouts_dir": empty})
	assert.Equal(t, true, out["failed"])
	assert.Equal(t, false, out["changed"], "nothing was removed")
	assert.Empty(t, out["purged"])
	assert.Contains(t, out["msg"], "which has no layout on this host")
	for _, m := range res.Quarantined {
		_, err := os.Lstat(m.To)
		assert.NoError(t, err, "%s is untouched", m.To)
	}

	// Another app's layout given: this app's deletion is not its business.
	other := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(other, "zz.yml"), []byte("app: zz\ncomponents:\n  - name: data\n    type: dir\n    path: "+other+"/srv/{name}\n"), 0o644))
	out = Module.Call(context.Background(), map[string]any{"archive_dir": archives, "layout_file": filepath.Join(other, "zz.yml"), "layouts_dir": empty})
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Empty(t, out["purged"])
	assert.Empty(t, out["kept"], "another app's deletion is out of this purge's scope")

	hostDir := t.TempDir()
	raw, err := os.ReadFile(f.LayoutFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(hostDir, "app.yml"), raw, 0o644))
	out = Module.Call(context.Background(), map[string]any{"archive_dir": archives, "layouts_dir": hostDir, "name": "acme", "keep_last": 0})
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["changed"])
	for _, m := range res.Quarantined {
		_, err := os.Lstat(m.To)
		assert.True(t, os.IsNotExist(err), "%s is purged", m.To)
	}
}
