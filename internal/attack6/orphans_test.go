package attack6

import (
	"strings"
	"testing"

	instancepurge "github.com/fleetsafe/fleetsafe/modules/instance_purge"
)

// TestAttack6_HiddenArchiveIsNoOrphan: promises 1 and 3 together. A
// plain DELETE of a live deletion's archive (a delete marker; the data
// version stays) makes its sidecar and RESTORE.md look like orphans of
// a missing archive. The next run on the instance (a purge, nothing
// due) must not remove them or mark RESTORE.md as having no archive:
// the archive is in the bucket. Tried with the objects locked
// (governance) and unlocked (an Object Lock bucket, no lock asked).
func TestAttack6_HiddenArchiveIsNoOrphan(t *testing.T) {
	for _, locked := range []bool{true, false} {
		name := map[bool]string{true: "locked", false: "unlocked"}[locked]
		t.Run(name, func(t *testing.T) {
			x := newS3fx(t, true, "acme")
			kv := []any{"retention_days", 30}
			if locked {
				kv = append(kv, "object_lock", "governance")
			}
			_, ak, _ := x.del(t, kv...)
			runbook := string(x.get(t, ak+".RESTORE.md", ""))
			side := string(x.get(t, ak+".sha256", ""))
			x.plainDelete(t, ak)
			p := x.f.CallModule(t, instancepurge.Module, x.args("name", "acme")...)
			t.Logf("purge: failed=%v msg=%v orphans=%v", p["failed"], p["msg"], p["orphans"])
			if o, _ := p["orphans"].([]any); len(o) > 0 {
				t.Errorf("purge lists the sidecar or RESTORE.md of a live deletion (archive hidden by a delete marker) as orphans: %v", o)
			}
			v := x.versions(t, ak)
			for _, k := range []string{ak, ak + ".sha256", ak + ".RESTORE.md"} {
				if v[k][0] == 0 {
					t.Errorf("%s has no data version left after the purge: %v", k, v)
				}
			}
			if got, err := x.c.StatObject(t.Context(), x.bucket, ak+".RESTORE.md", statOpts()); err == nil {
				if cur := string(x.get(t, ak+".RESTORE.md", got.VersionID)); cur != runbook {
					t.Errorf("RESTORE.md of a live deletion replaced: %.300q", cur)
				}
			}
			if got, err := x.c.StatObject(t.Context(), x.bucket, ak+".sha256", statOpts()); err == nil {
				if cur := string(x.get(t, ak+".sha256", got.VersionID)); cur != side {
					t.Errorf("sidecar of a live deletion replaced: %.300q", cur)
				}
			} else if !strings.Contains(err.Error(), "not exist") {
				t.Logf("stat sidecar: %v", err)
			}
		})
	}
}

// TestAttack6_PlantedRunbookOfAnotherInstance: promise 3. globex's
// RESTORE.md (which restores globex's archive, present in the bucket) is
// PUT by hand under acme's prefix, named after an archive acme does not
// have. The next run on acme lists it as an orphan and removes it (the
// bucket does not lock it); globex's own runbook is untouched.
func TestAttack6_PlantedRunbookOfAnotherInstance(t *testing.T) {
	x := newS3fx(t, true, "acme", "globex")
	_, gk, _ := x.delName(t, "globex", "retention_days", 30)
	x.delName(t, "acme", "retention_days", 30)
	grunbook := x.get(t, gk+".RESTORE.md", "")
	planted := x.prefix + "/acme/" + strings.TrimPrefix(gk, x.prefix+"/globex/") + ".RESTORE.md"
	x.put(t, planted, grunbook)
	p := x.f.CallModule(t, instancepurge.Module, x.args("name", "acme")...)
	t.Logf("purge: failed=%v msg=%v orphans=%v", p["failed"], p["msg"], p["orphans"])
	if !strings.Contains(toString(p["orphans"]), planted) {
		t.Errorf("the planted RESTORE.md %s is not listed as an orphan: %v", planted, p["orphans"])
	}
	if v := x.versions(t, planted); v[planted][0] != 0 {
		t.Errorf("the planted RESTORE.md is still in the bucket: %v", v)
	}
	if string(x.get(t, gk+".RESTORE.md", "")) != string(grunbook) {
		t.Errorf("globex's own RESTORE.md changed")
	}
}
