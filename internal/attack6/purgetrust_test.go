package attack6

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	instancepurge "github.com/fleetsafe/fleetsafe/modules/instance_purge"
)

// archiveKept fails unless p's kept list names archive with a reason
// holding word, and the archive is still on disk.
func archiveKept(t *testing.T, p map[string]any, archive, word string) {
	t.Helper()
	if _, err := os.Stat(archive); err != nil {
		t.Fatalf("purge removed the archive %s before the retention its manifest records: %v; purged: %.600s", archive, err, toString(p["purged"]))
	}
	kept, _ := p["kept"].([]any)
	for _, k := range kept {
		m := k.(map[string]any)
		if m["path"] == archive {
			if r, _ := m["reason"].(string); !strings.Contains(r, word) {
				t.Errorf("archive %s kept, but its reason does not say %q: %s", archive, word, r)
			}
			return
		}
	}
	t.Errorf("archive %s is not listed as kept: %.900s", archive, toString(p["kept"]))
}

// TestAttack6_EditedTombstoneRemovesTheArchiveEarly: acme (files and a
// database) deleted with retention 30 days. As root, by hand, its
// tombstone says state purged, deleted 40 days ago, purge_after an hour
// ago, retention_days 0. instance_purge with keep_last 0 must not remove
// the deletion's archive: the manifest inside it, verified, says 30 days.
func TestAttack6_EditedTombstoneRemovesTheArchiveEarly(t *testing.T) {
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	arch := filepath.Join(f.Root, "archives")
	out := localDelete(t, f, arch, "acme", 30)
	ts := out["tombstone"].(map[string]any)["path"].(string)
	b, err := os.ReadFile(ts)
	fleettest.Must(t, err)
	var m map[string]any
	fleettest.Must(t, json.Unmarshal(b, &m))
	m["state"] = "purged"
	m["deleted_at"] = time.Now().Add(-40 * 24 * time.Hour).UTC().Format(time.RFC3339Nano)
	m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	m["retention_days"] = 0
	b, _ = json.MarshalIndent(m, "", "  ")
	fleettest.Must(t, os.WriteFile(ts, b, 0o600))
	p := f.CallModule(t, instancepurge.Module, "name", "acme", "archive_dir", arch, "keep_last", 0)
	archiveKept(t, p, out["archive"].(map[string]any)["path"].(string), "own manifest")
}

// TestAttack6_TombstoneRemovedThenSpareCopy: acme deleted with retention
// 30 days; as root, its tombstone removed. The next soft delete of a new
// acme records the archive it finds without a tombstone as an abandoned
// attempt that moved nothing (a spare copy, no retention recorded), which
// purge used to remove at once. The manifest inside it says 30 days:
// kept.
func TestAttack6_TombstoneRemovedThenSpareCopy(t *testing.T) {
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	arch := filepath.Join(f.Root, "archives")
	first := localDelete(t, f, arch, "acme", 30)
	fleettest.Must(t, os.Remove(first["tombstone"].(map[string]any)["path"].(string)))
	fleettest.Must(t, f.AddInstance(t.Context(), "acme"))
	localDelete(t, f, arch, "acme", 30)
	p := f.CallModule(t, instancepurge.Module, "name", "acme", "archive_dir", arch, "keep_last", 1)
	archiveKept(t, p, first["archive"].(map[string]any)["path"].(string), "own manifest")
}

// TestAttack6_BucketTombstoneRemovedArchiveKept: acme deleted into a
// bucket without Object Lock, kept 30 days; someone allowed to delete
// versions removes every version of its tombstone. The archive, found
// without a tombstone, used to pass for a spare copy and go at once; the
// manifest inside it says 30 days: purge keep_last 0 keeps every version
// of it, its sidecar and RESTORE.md.
func TestAttack6_BucketTombstoneRemovedArchiveKept(t *testing.T) {
	x := newS3fx(t, false, "acme")
	del, ak, tk := x.del(t, "retention_days", 30)
	x.removeEveryVersion(t, tk)
	p := x.f.CallModule(t, instancepurge.Module, x.args("name", "acme", "keep_last", 0)...)
	v := x.versions(t, ak)
	for _, k := range []string{ak, ak + ".sha256", ak + ".RESTORE.md"} {
		if v[k][0] == 0 {
			t.Errorf("%s lost every data version: %v; purged: %.600s", k, v, toString(p["purged"]))
		}
	}
	archive := del["archive"].(map[string]any)["path"].(string)
	kept, _ := p["kept"].([]any)
	found := false
	for _, k := range kept {
		m := k.(map[string]any)
		if m["path"] == archive {
			found = true
			if r, _ := m["reason"].(string); !strings.Contains(r, "own manifest") || !strings.Contains(r, "no tombstone") {
				t.Errorf("kept, but the reason does not name the manifest and the missing tombstone: %s", r)
			}
		}
	}
	if !found {
		t.Errorf("archive %s not listed as kept: %.900s", archive, toString(p["kept"]))
	}
}
