package attack6

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	instancepurge "github.com/fleetsafe/fleetsafe/modules/instance_purge"
)

// TestAttack6_PurgesDuringASoftDeleteTakeNothingForAnOrphan: promise 3,
// two runs at once. While a soft delete of acme writes its archive,
// sidecar and RESTORE.md into the bucket, purges of acme run again and
// again (nothing is due). None may take the deletion's sidecar or
// RESTORE.md for orphans of a missing archive: afterwards all three are
// in the bucket as written, and restore from the bucket gives acme back.
func TestAttack6_PurgesDuringASoftDeleteTakeNothingForAnOrphan(t *testing.T) {
	x := newS3fx(t, true, "acme")
	before := x.f.Snapshot(t, "acme")
	t.Setenv("FLEETSAFE_SYSTEMD_DIR", x.f.SystemdDir)
	raw := map[string]any{"layout_file": x.f.LayoutFile}
	args := x.args("name", "acme")
	for i := 0; i+1 < len(args); i += 2 {
		raw[args[i].(string)] = args[i+1]
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var orphans []string
	runs := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			out := instancepurge.Module.Call(context.Background(), raw)
			mu.Lock()
			runs++
			if o := fmt.Sprint(out["orphans"]); o != "[]" && o != "<nil>" {
				orphans = append(orphans, o)
			}
			mu.Unlock()
		}
	}()
	del, ak, _ := x.del(t, "retention_days", 30)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d purges ran beside the soft delete", runs)
	if len(orphans) > 0 {
		t.Errorf("a purge beside the soft delete reported orphans: %v", orphans)
	}
	v := x.versions(t, ak)
	for _, k := range []string{ak, ak + ".sha256", ak + ".RESTORE.md"} {
		if v[k][0] != 1 || v[k][1] != 0 {
			t.Errorf("%s: %d data version(s), %d marker(s) after purges beside its soft delete (want 1, 0)", k, v[k][0], v[k][1])
		}
	}
	destroyQuarantine(t, del)
	out := x.restore(t, "source", "archive")
	if out["failed"] == true {
		t.Fatalf("restore: %v", out["msg"])
	}
	if !reflect.DeepEqual(x.f.Snapshot(t, "acme"), before) {
		t.Errorf("restored instance differs")
	}
}
