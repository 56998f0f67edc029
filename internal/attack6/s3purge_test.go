package attack6

import (
	"encoding/json"
	"os"
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
