package attack6

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	instanceinfo "github.com/fleetsafe/fleetsafe/modules/instance_info"
	instancepurge "github.com/fleetsafe/fleetsafe/modules/instance_purge"
	instancerestore "github.com/fleetsafe/fleetsafe/modules/instance_restore"
	instancesoftdelete "github.com/fleetsafe/fleetsafe/modules/instance_soft_delete"
)

func (x *s3fx) del(t *testing.T, kv ...any) (out map[string]any, archiveKey, tombKey string) {
	t.Helper()
	return x.delName(t, "acme", kv...)
}

func (x *s3fx) delName(t *testing.T, name string, kv ...any) (out map[string]any, archiveKey, tombKey string) {
	t.Helper()
	out = x.f.CallModule(t, instancesoftdelete.Module, x.args(append([]any{"name", name, "reason", "attack6"}, kv...)...)...)
	if out["failed"] == true {
		t.Fatalf("soft delete: %v", out["msg"])
	}
	archiveKey = x.key(out["archive"].(map[string]any)["path"].(string))
	tombKey = x.key(out["tombstone"].(map[string]any)["path"].(string))
	return out, archiveKey, tombKey
}

func (x *s3fx) restore(t *testing.T, kv ...any) map[string]any {
	t.Helper()
	return x.f.CallModule(t, instancerestore.Module, x.args(append([]any{"name", "acme"}, kv...)...)...)
}

// destroyQuarantine removes what a soft delete moved into quarantine, as
// if the host had lost it (no database in these fleets).
func destroyQuarantine(t *testing.T, out map[string]any) {
	t.Helper()
	for _, q := range out["quarantined"].([]any) {
		fleettest.Must(t, os.RemoveAll(q.(map[string]any)["to"].(string)))
	}
}

// TestAttack6_MarkersStackedOnEveryObjectOfADeletion: promise 1. Three
// plain DELETEs on each object of a locked deletion (archive, sidecar,
// RESTORE.md, tombstone): instance_info still lists the deletion, restore
// from the bucket alone gives the instance back identical and says it
// read through delete markers, and purge removes none of the locked data.
func TestAttack6_MarkersStackedOnEveryObjectOfADeletion(t *testing.T) {
	x := newS3fx(t, true, "acme")
	before := x.f.Snapshot(t, "acme")
	del, ak, tk := x.del(t, "object_lock", "governance", "retention_days", 1)
	keys := []string{ak, ak + ".sha256", ak + ".RESTORE.md", tk}
	for _, k := range keys {
		for range 3 {
			x.plainDelete(t, k)
		}
	}
	info := x.f.CallModule(t, instanceinfo.Module, x.args("name", "acme", "sizes", false)...)
	if info["failed"] == true {
		t.Fatalf("instance_info: %v", info["msg"])
	}
	if q, _ := info["quarantined"].([]any); len(q) != 1 || q[0].(map[string]any)["id"] != del["tombstone"].(map[string]any)["id"] {
		t.Errorf("instance_info hides the deletion behind its delete markers: quarantined=%v archived=%v", info["quarantined"], info["archived"])
	}
	destroyQuarantine(t, del)
	out := x.restore(t, "source", "archive")
	if out["failed"] == true {
		t.Fatalf("restore through stacked delete markers failed: %v", out["msg"])
	}
	if got := x.f.Snapshot(t, "acme"); !reflect.DeepEqual(got, before) {
		t.Errorf("restored instance differs from the deleted one")
	}
	if !strings.Contains(strings.ToLower(toString(out["notes"])), "delete marker") {
		t.Errorf("restore does not say it read through delete markers: notes=%v", out["notes"])
	}
	// A purge now (the instance is back, the archive locked a day) removes
	// no data version of the deletion.
	p := x.f.CallModule(t, instancepurge.Module, x.args("name", "acme", "keep_last", 0)...)
	if p["failed"] == true {
		t.Logf("purge failed: %v", p["msg"])
	}
	v := x.versions(t, x.prefix+"/acme/")
	for _, k := range []string{ak, ak + ".sha256", tk} {
		if v[k][0] == 0 {
			t.Errorf("purge removed every data version of locked %s: %v (purge: %v)", k, v, p)
		}
	}
}

func toString(v any) string { return fmt.Sprint(v) }

// TestAttack6_ForgedVersionOverTheArchiveIsNeverRestored: promise 1 and
// the restore's sha256 check. Two deletions of acme (the second holds a
// file the first does not). By hand: a plain DELETE of the second
// archive, then the first deletion's (valid, acme's own) archive and a
// matching sidecar PUT as new versions over the second's keys. Restore
// from the bucket must give back what the second tombstone recorded, or
// refuse with nothing changed: never the forged content.
func TestAttack6_ForgedVersionOverTheArchiveIsNeverRestored(t *testing.T) {
	x := newS3fx(t, true, "acme")
	_, ak1, _ := x.del(t, "object_lock", "governance", "retention_days", 1)
	if out := x.restore(t); out["failed"] == true {
		t.Fatalf("restore from quarantine: %v", out["msg"])
	}
	data := x.f.Path("data", "acme")
	fleettest.Must(t, os.WriteFile(filepath.Join(data, "second.txt"), []byte("only in the second deletion\n"), 0o644))
	second := x.f.Snapshot(t, "acme")
	del2, ak2, _ := x.del(t, "object_lock", "governance", "retention_days", 1)
	destroyQuarantine(t, del2)

	x.plainDelete(t, ak2)
	forged := x.get(t, ak1, "")
	x.put(t, ak2, forged)
	side := strings.Replace(string(x.get(t, ak1+".sha256", "")), filepath.Base(ak1), filepath.Base(ak2), 1)
	x.put(t, ak2+".sha256", []byte(side))

	out := x.restore(t, "source", "archive")
	if out["failed"] == true {
		t.Fatalf("restore refused the deletion although the version its tombstone recorded is in the bucket (FINDINGS-6 #1): %v", out["msg"])
	}
	if !reflect.DeepEqual(x.f.Snapshot(t, "acme"), second) {
		t.Fatalf("restore brought back something other than what the tombstone recorded (the forged version): %v", out)
	}
	// The forged versions are named as passed over.
	notes := fmt.Sprint(out["notes"])
	for o := range x.c.ListObjects(context.Background(), x.bucket, minio.ListObjectsOptions{Prefix: ak2, WithVersions: true}) {
		if (o.Key == ak2 || o.Key == ak2+".sha256") && o.IsLatest && !o.IsDeleteMarker && (!strings.Contains(notes, o.VersionID) || !strings.Contains(notes, "passed over")) {
			t.Errorf("notes do not name the forged version %s of %s as passed over: %s", o.VersionID, o.Key, notes)
		}
	}
}

// TestAttack6_SuspendedVersioning: promise 1 on a bucket whose versioning
// was enabled for the deletion, then suspended (no Object Lock). A plain
// DELETE of the archive and the tombstone now writes a null delete
// marker; the data versions stay. Restore must still find them.
func TestAttack6_SuspendedVersioning(t *testing.T) {
	x := newS3fx(t, false, "acme")
	ctx := context.Background()
	fleettest.Must(t, x.c.EnableVersioning(ctx, x.bucket))
	before := x.f.Snapshot(t, "acme")
	del, ak, tk := x.del(t, "retention_days", 1)
	if err := x.c.SuspendVersioning(ctx, x.bucket); err != nil {
		t.Fatalf("suspend versioning: %v", err)
	}
	for _, k := range []string{ak, tk} {
		x.plainDelete(t, k)
	}
	v := x.versions(t, x.prefix+"/acme/")
	if v[ak][0] == 0 || v[tk][0] == 0 {
		t.Fatalf("the server removed the data versions on a plain DELETE with versioning suspended: %v", v)
	}
	destroyQuarantine(t, del)
	out := x.restore(t, "source", "archive")
	if out["failed"] == true {
		t.Fatalf("restore with versioning suspended, behind delete markers: %v", out["msg"])
	}
	if !reflect.DeepEqual(x.f.Snapshot(t, "acme"), before) {
		t.Errorf("restored instance differs")
	}
}

// TestAttack6_PurgeWithTheNewestDeletionHidden: promise 1 for purge. Two
// deletions (retention 0, no lock); the newest one's tombstone and
// archive hidden by plain DELETEs. purge keep_last=1 must keep the
// newest deletion's archive (the data version): hidden is not gone.
func TestAttack6_PurgeWithTheNewestDeletionHidden(t *testing.T) {
	x := newS3fx(t, true, "acme")
	_, ak1, _ := x.del(t, "retention_days", 0)
	if out := x.restore(t); out["failed"] == true {
		t.Fatalf("restore from quarantine: %v", out["msg"])
	}
	_, ak2, tk2 := x.del(t, "retention_days", 0)
	x.plainDelete(t, tk2)
	x.plainDelete(t, ak2)
	p := x.f.CallModule(t, instancepurge.Module, x.args("name", "acme", "keep_last", 1)...)
	t.Logf("purge: failed=%v msg=%v purged=%v kept=%v", p["failed"], p["msg"], p["purged"], p["kept"])
	v := x.versions(t, x.prefix+"/acme/")
	if v[ak2][0] == 0 {
		t.Errorf("purge removed the newest deletion's archive (hidden by a delete marker) with keep_last 1: %v", v)
	}
	if v[ak1][0] != 0 && p["failed"] != true {
		t.Logf("the older archive was kept too: %v", v)
	}
}

// TestAttack6_ForgedSidecarVersionOverALockedArchive: promise 1, hole 1's
// smallest form. The archive is untouched and matches its tombstone; by
// hand a plain DELETE of its sidecar and a new sidecar version with a
// wrong sha256 (the right file name). The locked sidecar version is still
// in the bucket. Restore should use the archive its tombstone vouches
// for (or the sidecar version that matches it) rather than refuse it as
// "do not rely on this archive".
func TestAttack6_ForgedSidecarVersionOverALockedArchive(t *testing.T) {
	x := newS3fx(t, true, "acme")
	before := x.f.Snapshot(t, "acme")
	del, ak, _ := x.del(t, "object_lock", "governance", "retention_days", 1)
	x.plainDelete(t, ak+".sha256")
	x.put(t, ak+".sha256", []byte(strings.Repeat("0", 64)+"  "+filepath.Base(ak)+"\n"))
	destroyQuarantine(t, del)
	out := x.restore(t, "source", "archive")
	if out["failed"] == true {
		t.Fatalf("restore refused an archive that matches its tombstone because of a forged sidecar version (FINDINGS-6 #1): %v", out["msg"])
	}
	if !reflect.DeepEqual(x.f.Snapshot(t, "acme"), before) {
		t.Errorf("restored instance differs")
	}
	if notes := fmt.Sprint(out["notes"]); !strings.Contains(notes, "sidecar") || !strings.Contains(notes, "passed over") {
		t.Errorf("notes do not say the forged sidecar version was passed over: %s", notes)
	}
}
