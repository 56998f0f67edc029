package attack6

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	instancepurge "github.com/fleetsafe/fleetsafe/modules/instance_purge"
)

// TestAttack6_ForgedTombstoneVersionInTheBucket: promises 1 and 2. A
// locked deletion kept 30 days; by hand a plain DELETE of its tombstone,
// then a new version PUT over it saying purge_after an hour ago. The
// newest tombstone holding data is the forged one, but the quarantine's
// own records disagree and the archive is locked: purge removes nothing.
func TestAttack6_ForgedTombstoneVersionInTheBucket(t *testing.T) {
	x := newS3fx(t, true, "acme")
	del, ak, tk := x.del(t, "object_lock", "governance", "retention_days", 30)
	var m map[string]any
	if err := json.Unmarshal(x.get(t, tk, ""), &m); err != nil {
		t.Fatal(err)
	}
	m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	m["retention_days"] = 0
	b, _ := json.MarshalIndent(m, "", "  ")
	x.plainDelete(t, tk)
	x.put(t, tk, b)
	p := x.f.CallModule(t, instancepurge.Module, x.args("name", "acme", "keep_last", 0)...)
	t.Logf("purge: failed=%v msg=%.500v", p["failed"], p["msg"])
	for _, q := range del["quarantined"].([]any) {
		to := q.(map[string]any)["to"].(string)
		if _, err := os.Lstat(to); err != nil {
			t.Errorf("purge removed quarantine %s 30 days early on a forged tombstone version", to)
		}
	}
	v := x.versions(t, ak)
	for _, k := range []string{ak, ak + ".sha256", ak + ".RESTORE.md"} {
		if v[k][0] == 0 {
			t.Errorf("%s lost every data version: %v", k, v)
		}
	}
}

// TestAttack6_PurgeRemovesHiddenVersionsToo: the README's "Removing an
// object in a versioned bucket removes every version of it, never only a
// delete marker", against a hand-made marker. A deletion due now (no
// lock) whose archive and tombstone were hidden by plain DELETEs: purge
// keep_last 0 must leave no data version of the archive, its sidecar
// or RESTORE.md behind (a purge that leaves the archive readable is no
// purge); the tombstone stays as the deletion's record.
func TestAttack6_PurgeRemovesHiddenVersionsToo(t *testing.T) {
	x := newS3fx(t, true, "acme")
	_, ak, tk := x.del(t, "retention_days", 0)
	x.plainDelete(t, ak)
	x.plainDelete(t, tk)
	p := x.f.CallModule(t, instancepurge.Module, x.args("name", "acme", "keep_last", 0)...)
	t.Logf("purge: failed=%v msg=%.500v", p["failed"], p["msg"])
	if p["failed"] == true {
		t.Fatalf("purge failed: %v", p["msg"])
	}
	v := x.versions(t, x.prefix+"/acme/")
	// The tombstone stays (the record of the deletion, state purged).
	if v[tk][0] == 0 {
		t.Errorf("purge removed the tombstone: %v", v)
	}
	for _, k := range []string{ak, ak + ".sha256", ak + ".RESTORE.md"} {
		if v[k][0] != 0 {
			t.Errorf("purge left %d data version(s) of %s: %v", v[k][0], k, v)
		}
	}
}

// TestAttack6_RecordsRemovedAndForgedTombstoneVersionWithoutFlag: hole 2
// in the bucket. A locked deletion kept 30 days; every record of its
// quarantine removed by hand, and a tombstone version PUT over its own,
// due an hour ago, without retention_records. Two attackers:
//   - "marker": a plain DELETE first (a delete marker), the deletion's
//     own tombstone version still in the bucket: the tombstone's history
//     overrules the forged version (a newer purge_after never shortens
//     retention), named in the reason the deletion is kept;
//   - "versions-removed": every version of the tombstone removed by id
//     first (tombstones are not locked), so the forged one is all there
//     is: the locked archive's manifest says records were written, and
//     the refusal says so.
//
// Either way purge removes nothing of the quarantine, and the locked
// objects keep their data.
func TestAttack6_RecordsRemovedAndForgedTombstoneVersionWithoutFlag(t *testing.T) {
	for _, attacker := range []string{"marker", "versions-removed"} {
		t.Run(attacker, func(t *testing.T) {
			x := newS3fx(t, true, "acme")
			del, ak, tk := x.del(t, "object_lock", "governance", "retention_days", 30)
			var m map[string]any
			if err := json.Unmarshal(x.get(t, tk, ""), &m); err != nil {
				t.Fatal(err)
			}
			m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
			m["retention_days"] = 0
			delete(m, "retention_records")
			b, _ := json.MarshalIndent(m, "", "  ")
			if attacker == "marker" {
				x.plainDelete(t, tk)
			} else {
				x.removeEveryVersion(t, tk)
			}
			x.put(t, tk, b)
			for _, q := range del["quarantined"].([]any) {
				to := q.(map[string]any)["to"].(string)
				if err := os.Remove(filepath.Join(filepath.Dir(to), ".fleetsafe-retention")); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
			p := x.f.CallModule(t, instancepurge.Module, x.args("name", "acme", "keep_last", 0)...)
			t.Logf("purge: failed=%v msg=%.500v", p["failed"], p["msg"])
			for _, q := range del["quarantined"].([]any) {
				to := q.(map[string]any)["to"].(string)
				if _, err := os.Lstat(to); err != nil {
					t.Errorf("purge removed quarantine %s 30 days early: records removed and a forged tombstone version", to)
				}
			}
			if attacker == "marker" {
				if k := toString(p["kept"]); !strings.Contains(k, "not reached") || !strings.Contains(k, "put over it by hand") {
					t.Errorf("the deletion is not kept for its own retention, with the forged version named: %.900s", k)
				}
			} else if r := toString(p["refused"]); !strings.Contains(r, "the manifest of archive s3://") {
				t.Errorf("the refusal does not say the archive's manifest vouches for the records: %.900s", r)
			}
			v := x.versions(t, ak)
			for _, k := range []string{ak, ak + ".sha256", ak + ".RESTORE.md"} {
				if v[k][0] == 0 {
					t.Errorf("%s lost every data version: %v", k, v)
				}
			}
		})
	}
}
