package attack6

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	instancepurge "github.com/fleetsafe/fleetsafe/modules/instance_purge"
)

// Attacks on the fix of FINDINGS-6 #1: restore reads the versions of an
// archive and of its sidecar that the tombstone recorded, whatever was
// PUT over them, and never a forged one.

// forgedFx is two locked deletions of acme (the second holds a file the
// first lacks), the second's quarantine lost: the first deletion's
// archive is a valid archive of acme, the forger's best material.
type forgedFx struct {
	*s3fx
	ak1, ak2, tk2 string
	second        fleettest.Snapshot
	extra         []any // restore's own arguments (decrypt_identity_file)
}

func newForgedFx(t *testing.T, delKV, restoreKV []any) *forgedFx {
	t.Helper()
	x := newS3fx(t, true, "acme")
	kv := delKV
	_, ak1, _ := x.del(t, append([]any{"object_lock", "governance", "retention_days", 1}, kv...)...)
	if out := x.restore(t, restoreKV...); out["failed"] == true {
		t.Fatalf("restore from quarantine: %v", out["msg"])
	}
	fleettest.Must(t, os.WriteFile(filepath.Join(x.f.Path("data", "acme"), "second.txt"), []byte("only in the second deletion\n"), 0o644))
	second := x.f.Snapshot(t, "acme")
	del2, ak2, tk2 := x.del(t, append([]any{"object_lock", "governance", "retention_days", 1}, kv...)...)
	destroyQuarantine(t, del2)
	return &forgedFx{s3fx: x, ak1: ak1, ak2: ak2, tk2: tk2, second: second, extra: restoreKV}
}

// firstArchive and firstSidecar are the first deletion's archive and a
// sidecar of it under the second's name: a consistent forged pair.
func (x *forgedFx) firstArchive(t *testing.T) []byte { return x.get(t, x.ak1, "") }

func (x *forgedFx) firstSidecar(t *testing.T) []byte {
	return []byte(strings.Replace(string(x.get(t, x.ak1+".sha256", "")), filepath.Base(x.ak1), filepath.Base(x.ak2), 1))
}

// latest returns the id of key's current version.
func (x *forgedFx) latest(t *testing.T, key string) string {
	t.Helper()
	for o := range x.c.ListObjects(context.Background(), x.bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if o.Key == key && o.IsLatest {
			return o.VersionID
		}
	}
	t.Fatalf("no current version of %s", key)
	return ""
}

// restoresTheRecorded restores from the bucket and requires the second
// deletion's content back, with notes holding each of want.
func (x *forgedFx) restoresTheRecorded(t *testing.T, want ...string) map[string]any {
	t.Helper()
	out := x.restore(t, append([]any{"source", "archive"}, x.extra...)...)
	if out["failed"] == true {
		t.Fatalf("restore refused although the versions the tombstone recorded are in the bucket: %v", out["msg"])
	}
	if !reflect.DeepEqual(x.f.Snapshot(t, "acme"), x.second) {
		t.Fatalf("restore brought back something other than what the tombstone recorded: %v", out)
	}
	notes := fmt.Sprint(out["notes"])
	for _, w := range want {
		if !strings.Contains(notes, w) {
			t.Errorf("notes do not name %q: %s", w, notes)
		}
	}
	return out
}

// Only the archive forged (a valid archive of acme, the first deletion's,
// PUT over the second's with a delete marker between); the sidecar left
// alone. The sidecar alone keeps the newest version from passing.
func TestAttack6_ForgedArchiveVersionOnly(t *testing.T) {
	x := newForgedFx(t, nil, nil)
	x.plainDelete(t, x.ak2)
	x.put(t, x.ak2, x.firstArchive(t))
	forged := x.latest(t, x.ak2)
	out := x.restoresTheRecorded(t, forged, "passed over")
	if n := fmt.Sprint(out["notes"]); strings.Contains(n, "sidecar s3://") {
		t.Errorf("notes say a sidecar version was passed over, none was forged: %s", n)
	}
}

// Several forged versions over both, markers between, one of them not
// even an archive; the sidecar's forged versions record each a digest of
// its own. Every forged archive version is named.
func TestAttack6_SeveralForgedVersions(t *testing.T) {
	x := newForgedFx(t, nil, nil)
	var forged []string
	for i, data := range [][]byte{x.firstArchive(t), []byte("not an archive at all\n"), x.firstArchive(t)} {
		x.plainDelete(t, x.ak2)
		x.put(t, x.ak2, data)
		forged = append(forged, x.latest(t, x.ak2))
		x.put(t, x.ak2+".sha256", []byte(fmt.Sprintf("%064x  %s\n", i+1, filepath.Base(x.ak2))))
	}
	x.put(t, x.ak2+".sha256", x.firstSidecar(t))
	x.restoresTheRecorded(t, append(forged, "sidecar s3://")...)
}

// The forged archive version comes with a sidecar version that records
// the right sha256, the one the tombstone recorded: the sha256 a forger
// can read and copy. The version read must be chosen by its content's
// sha256, never by what a sidecar (or the version's name) claims.
func TestAttack6_ForgedVersionWithTheRecordedSHA256(t *testing.T) {
	x := newForgedFx(t, nil, nil)
	right := x.get(t, x.ak2+".sha256", "")
	x.put(t, x.ak2, x.firstArchive(t))
	forged := x.latest(t, x.ak2)
	x.put(t, x.ak2+".sha256", right)
	x.restoresTheRecorded(t, forged)
}

// The whole deletion forged: archive, sidecar and a tombstone version
// recording the forged archive's sha256 (everything else kept). A
// tombstone's archive_sha256 never changes once written: restore keeps
// the one the deletion wrote, names the tombstone version that says
// otherwise, and reads the recorded archive.
func TestAttack6_ForgedTombstoneArchiveAndSidecar(t *testing.T) {
	x := newForgedFx(t, nil, nil)
	side := x.firstSidecar(t)
	var m map[string]any
	fleettest.Must(t, json.Unmarshal(x.get(t, x.tk2, ""), &m))
	m["archive_sha256"] = strings.Fields(string(side))[0]
	tomb, _ := json.MarshalIndent(m, "", "  ")
	x.put(t, x.ak2, x.firstArchive(t))
	x.put(t, x.ak2+".sha256", side)
	x.plainDelete(t, x.tk2)
	x.put(t, x.tk2, tomb)
	forgedTomb := x.latest(t, x.tk2)
	x.restoresTheRecorded(t, forgedTomb, "archive_sha256", "passed over")
}

// A tombstone version that is no tombstone at all (and a delete marker)
// PUT over the deletion's: the deletion is not lost, its newest
// tombstone version is read and the garbage named.
func TestAttack6_GarbageTombstoneVersion(t *testing.T) {
	x := newForgedFx(t, nil, nil)
	x.plainDelete(t, x.tk2)
	x.put(t, x.tk2, []byte("{\"id\": 12"))
	garbage := x.latest(t, x.tk2)
	x.restoresTheRecorded(t, garbage, "not a tombstone")
}

// No version of the archive is the recorded one (no lock: the recorded
// version removed by its version id, a forged one PUT): restore refuses,
// names the version it tried, and changes nothing.
func TestAttack6_NoVersionMatchesTheTombstone(t *testing.T) {
	x := newS3fx(t, true, "acme")
	del, ak, _ := x.del(t, "retention_days", 1)
	destroyQuarantine(t, del)
	good := x.get(t, ak, "")
	for o := range x.c.ListObjects(context.Background(), x.bucket, minio.ListObjectsOptions{Prefix: ak, WithVersions: true}) {
		if o.Key == ak {
			fleettest.Must(t, x.c.RemoveObject(context.Background(), x.bucket, ak, minio.RemoveObjectOptions{VersionID: o.VersionID}))
		}
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 1
	fx := &forgedFx{s3fx: x}
	var forged []string
	for _, data := range [][]byte{flipped, good[:len(good)/2]} {
		x.put(t, ak, data)
		forged = append(forged, fx.latest(t, ak))
	}
	out := x.restore(t, "source", "archive")
	if out["failed"] != true {
		t.Fatalf("restore from forged versions only: %v", out)
	}
	msg := fmt.Sprint(out["msg"])
	for _, w := range append(forged, "versions tried", "the instance was not changed") {
		if !strings.Contains(msg, w) {
			t.Errorf("refusal does not say %q: %s", w, msg)
		}
	}
	if out["changed"] == true {
		t.Errorf("a refused restore says changed")
	}
	if _, err := os.Lstat(x.f.Path("data", "acme")); !os.IsNotExist(err) {
		t.Errorf("a refused restore wrote the data component (%v)", err)
	}
}

// Encrypted archives (encrypt_to): the forged versions are the first
// deletion's ciphertext and sidecar, and an age file to a stranger that
// no identity given opens. Restore, with the operator's identity, reads
// the recorded version; the stranger's is passed over as unreadable.
func TestAttack6_ForgedVersionOverAnEncryptedArchive(t *testing.T) {
	operator, _ := age.GenerateX25519Identity()
	stranger, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	fleettest.Must(t, os.WriteFile(keyFile, []byte(operator.String()+"\n"), 0o600))
	x := newForgedFx(t, []any{"encrypt_to", []any{operator.Recipient().String()}}, []any{"decrypt_identity_file", keyFile})
	first := x.firstArchive(t)
	if !strings.HasPrefix(string(first), "age-encryption.org/v1") {
		t.Fatal("the archive is not encrypted: the test sees nothing")
	}
	var sb strings.Builder
	w, err := age.Encrypt(&sb, stranger.Recipient())
	fleettest.Must(t, err)
	fmt.Fprint(w, "a stranger's archive")
	fleettest.Must(t, w.Close())
	x.put(t, x.ak2, first)
	x.put(t, x.ak2, []byte(sb.String()))
	foreign := x.latest(t, x.ak2)
	x.put(t, x.ak2+".sha256", x.firstSidecar(t))
	x.restoresTheRecorded(t, foreign, "unreadable", "sidecar s3://")
}

// A forged tombstone version that shortens the retention (purge_after an
// hour ago) of a deletion restored from its quarantine, whose archive is
// not locked: purge keeps the archive until the purge_after its deletion
// wrote. A version written later may lengthen a retention, never shorten
// it.
func TestAttack6_ForgedTombstoneShortensNoRetention(t *testing.T) {
	x := newS3fx(t, true, "acme")
	_, ak, tk := x.del(t, "retention_days", 30)
	if out := x.restore(t); out["failed"] == true {
		t.Fatalf("restore from quarantine: %v", out["msg"])
	}
	var m map[string]any
	fleettest.Must(t, json.Unmarshal(x.get(t, tk, ""), &m))
	m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	m["retention_days"] = 0
	b, _ := json.MarshalIndent(m, "", "  ")
	x.put(t, tk, b)
	p := x.f.CallModule(t, instancepurge.Module, x.args("name", "acme", "keep_last", 0)...)
	t.Logf("purge: failed=%v msg=%.300v", p["failed"], p["msg"])
	if v := x.versions(t, ak); v[ak][0] == 0 {
		t.Errorf("purge removed the archive 30 days early on a forged tombstone version: %v", v)
	}
	if kept := fmt.Sprint(p["kept"]); !strings.Contains(kept, "purge_after") || !strings.Contains(kept, "put over it by hand") {
		t.Errorf("purge's kept reason does not name the overruled tombstone version: %s", kept)
	}
}

// TestAttack6_ForgedVersionsProperty: any sequence of versions PUT by
// hand over a locked deletion (its archive, sidecar and tombstone: other
// valid archives of acme, garbage, the right sha256 over the wrong
// content, tombstones recording another sha256 or an earlier
// purge_after) and of plain DELETEs never makes restore bring back
// anything but what the tombstone recorded, and never makes it refuse
// while the recorded versions are in the bucket. The forgeries pile up
// from one check to the next, as they would in a bucket; the instance
// is removed between checks.
func TestAttack6_ForgedVersionsProperty(t *testing.T) {
	x := newForgedFx(t, nil, nil)
	first, side1 := x.firstArchive(t), x.firstSidecar(t)
	good := x.get(t, x.ak2, "")
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/3] ^= 0x20
	right := x.get(t, x.ak2+".sha256", "")
	var tomb map[string]any
	fleettest.Must(t, json.Unmarshal(x.get(t, x.tk2, ""), &tomb))
	forgedTomb := func(field string, value any) []byte {
		m := map[string]any{}
		for k, v := range tomb {
			m[k] = v
		}
		m[field] = value
		b, _ := json.MarshalIndent(m, "", "  ")
		return b
	}
	archives := [][]byte{first, flipped, good[:len(good)/2], []byte("garbage")}
	sidecars := [][]byte{side1, right, []byte("not a sidecar\n")}
	tombs := [][]byte{forgedTomb("archive_sha256", strings.Fields(string(side1))[0]),
		forgedTomb("purge_after", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)),
		forgedTomb("archive_path", "s3://elsewhere/acme/x.tar.zst"), forgedTomb("state", "abandoned"), []byte("{")}
	keys := []string{x.ak2, x.ak2 + ".sha256", x.tk2}
	prop := func(rt *rapid.T) {
		n := rapid.IntRange(1, 4).Draw(rt, "forgeries")
		for i := 0; i < n; i++ {
			switch rapid.IntRange(0, 3).Draw(rt, "what") {
			case 0:
				x.put(t, x.ak2, rapid.SampledFrom(archives).Draw(rt, "archive"))
			case 1:
				x.put(t, x.ak2+".sha256", rapid.SampledFrom(sidecars).Draw(rt, "sidecar"))
			case 2:
				x.put(t, x.tk2, rapid.SampledFrom(tombs).Draw(rt, "tombstone"))
			case 3:
				k := rapid.SampledFrom(keys).Draw(rt, "plain DELETE")
				if err := x.c.RemoveObject(context.Background(), x.bucket, k, minio.RemoveObjectOptions{}); err != nil {
					rt.Fatalf("plain DELETE %s: %v", k, err)
				}
			}
		}
		for _, c := range x.f.Layout.Components {
			if c.Type == "dir" || c.Type == "file" {
				fleettest.Must(t, os.RemoveAll(x.f.Path(c.Name, "acme")))
			}
		}
		out := x.restore(t, "source", "archive")
		if out["failed"] == true {
			rt.Fatalf("restore refused although the recorded versions are in the bucket: %v", out["msg"])
		}
		if !reflect.DeepEqual(x.f.Snapshot(t, "acme"), x.second) {
			rt.Fatalf("restore brought back something other than what the tombstone recorded: %v", out["notes"])
		}
	}
	old := flag.Lookup("rapid.checks").Value.String()
	if old == "100" { // rapid's default: each check is a restore from the bucket
		flag.Set("rapid.checks", "6")
		defer flag.Set("rapid.checks", old)
	}
	rapid.Check(t, prop)
}

// A tombstone version saying state abandoned (or archiving) over a
// deletion that reached quarantined: restore would pass over such a
// deletion for older data, and keep_last not count it. A completed
// deletion never goes back: the state is overruled, named, and the
// recorded archive restored.
func TestAttack6_ForgedTombstoneStateGoesNotBack(t *testing.T) {
	for _, state := range []string{"abandoned", "archiving"} {
		t.Run(state, func(t *testing.T) {
			x := newForgedFx(t, nil, nil)
			var m map[string]any
			fleettest.Must(t, json.Unmarshal(x.get(t, x.tk2, ""), &m))
			m["state"] = state
			b, _ := json.MarshalIndent(m, "", "  ")
			x.put(t, x.tk2, b)
			forged := x.latest(t, x.tk2)
			x.put(t, x.ak2, x.firstArchive(t))
			x.restoresTheRecorded(t, forged, "never goes back", "passed over")
		})
	}
}
