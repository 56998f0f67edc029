package modules_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// TestS3_SoftDeleteRestorePurgeThroughTheBinaries runs the real module
// binaries against the real S3 server (scripts/s3-up.sh), with the
// endpoint and credentials as module parameters (no AWS_* variable in
// their environment): a soft delete to the bucket under a governance
// lock; the quarantine destroyed; a restore from the bucket alone gives
// the instance back identical; the server refuses a delete of the locked
// archive attempted by hand; a second deletion under a legal hold is kept
// by purge, which says so; a bucket without Object Lock is refused before
// anything changes; the secret key appears in no output and no object.
func TestS3_SoftDeleteRestorePurgeThroughTheBinaries(t *testing.T) {
	set := s3test.Settings(t)
	client := s3test.Client(t)
	bucket := s3test.Bucket(t, true)
	plain := s3test.Bucket(t, false)
	lib := fleettest.BuildModules(t, "instance_soft_delete", "instance_restore", "instance_purge", "instance_info")
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	before := f.Snapshot(t, "acme")
	ctx := context.Background()

	runner := newS3Runner(t, lib, f, set, bucket, "fleet")
	run := func(module string, kv ...any) map[string]any { t.Helper(); return runner.run(t, "", module, kv...) }
	destroyQuarantine := func(out map[string]any) { t.Helper(); runner.destroyQuarantine(t, out) }

	// A bucket without Object Lock: refused before anything changes.
	out := run("instance_soft_delete", "name", "acme", "reason", "s3 test", "object_lock", "governance",
		"archive_store", "s3://"+plain+"/fleet")
	require.Equal(t, true, out["failed"], out["msg"])
	assert.Equal(t, false, out["changed"])
	assert.Contains(t, out["msg"], "does not have Object Lock enabled")
	assert.Contains(t, out["msg"], "--object-lock-enabled-for-bucket")
	assert.Equal(t, before, f.Snapshot(t, "acme"))

	// Check mode: says what it would do, writes nothing to the bucket.
	out = run("instance_soft_delete", "name", "acme", "reason", "s3 test", "object_lock", "governance", "retention_days", 1, "_ansible_check_mode", true)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["changed"])
	for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		t.Errorf("check mode wrote %s", o.Key)
	}
	assert.Equal(t, before, f.Snapshot(t, "acme"))

	// Soft delete into the bucket, locked until purge_after.
	var del map[string]any
	for range 300 { // the session that filled the database may take a moment to end (30 s at most: seconds on a loaded machine)
		del = run("instance_soft_delete", "name", "acme", "reason", "s3 test", "object_lock", "governance", "retention_days", 1)
		if m, _ := del["msg"].(string); !strings.Contains(m, "open connection") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, false, del["failed"], del["msg"])
	archive := del["archive"].(map[string]any)
	require.True(t, strings.HasPrefix(archive["path"].(string), "s3://"+bucket+"/fleet/acme/"), archive["path"])
	assert.Equal(t, true, archive["verified"])
	assert.NotEmpty(t, archive["store_checksum_sha256"], "the store's checksum is in the result")
	lock := del["archive_lock"].(map[string]any)
	assert.Equal(t, "GOVERNANCE", lock["mode"])
	purgeAfter, _ := time.Parse(time.RFC3339, del["tombstone"].(map[string]any)["purge_after"].(string))
	until, _ := time.Parse(time.RFC3339, lock["until"].(string))
	assert.WithinDuration(t, purgeAfter, until, time.Second, "locked until purge_after")
	obj := strings.TrimPrefix(archive["path"].(string), "s3://"+bucket+"/")

	// A delete of the archive attempted by hand, every version: refused.
	for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: obj, WithVersions: true}) {
		require.NoError(t, o.Err)
		err := client.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID})
		require.Error(t, err, "the server removed version %s of locked %s", o.VersionID, o.Key)
	}
	// A plain DELETE (no version id) is allowed: it only puts a delete
	// marker over the locked archive. Done to the archive and to its
	// tombstone, it must hide neither from fleetsafe (below: info and
	// restore still see them).
	tombKey := strings.TrimSuffix(obj, ".tar.zst") + ".tombstone.json"
	for _, key := range []string{obj, tombKey} {
		require.NoError(t, client.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}), "plain DELETE of %s", key)
		_, err := client.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
		require.Error(t, err, "%s still current after a plain DELETE: no delete marker, the case below is not tried", key)
	}

	// instance_info reads the quarantine and archived from the bucket.
	out = run("instance_info", "name", "acme", "sizes", false)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["archived"], "the bucket holds acme's objects")
	require.Len(t, out["quarantined"], 1, out["quarantined"])
	q := out["quarantined"].([]any)[0].(map[string]any)
	assert.Equal(t, del["tombstone"].(map[string]any)["id"], q["id"])
	assert.Equal(t, archive["path"], q["archive_path"])
	out = run("instance_info", "name", "globex", "sizes", false)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, false, out["archived"], "nothing of globex in the bucket")
	assert.Empty(t, out["quarantined"])

	// The host loses the quarantine; the bucket alone brings it back.
	destroyQuarantine(del)
	out = run("instance_restore", "name", "acme", "source", "archive")
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["changed"])
	assert.Equal(t, before, f.Snapshot(t, "acme"))
	assert.Contains(t, fmt.Sprint(out["notes"]), "hidden by a delete marker", "the restore says it read through the delete marker")
	// The operator undoes the delete by hand (removes the markers): the
	// local gateway answers a HEAD of a hidden version without its lock
	// headers, so the purge report below needs the archive visible.
	for _, key := range []string{obj, tombKey} {
		for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
			if o.IsDeleteMarker {
				require.NoError(t, client.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID}))
			}
		}
	}

	// A second deletion under a legal hold, retention 0: purge removes
	// its quarantine and keeps its archive, saying why.
	second := run("instance_soft_delete", "name", "acme", "reason", "again", "legal_hold", true, "retention_days", 0)
	require.Equal(t, false, second["failed"], second["msg"])
	assert.Equal(t, true, second["archive_lock"].(map[string]any)["legal_hold"])
	out = run("instance_purge", "name", "acme", "keep_last", 0)
	require.Equal(t, false, out["failed"], out["msg"])
	secondPath := second["archive"].(map[string]any)["path"].(string)
	var lockedKept, firstKept bool
	for _, k := range out["kept"].([]any) {
		k := k.(map[string]any)
		if k["path"] == secondPath && strings.Contains(k["reason"].(string), "Object Lock") && strings.Contains(k["reason"].(string), "legal hold") {
			lockedKept = true
		}
		if k["path"] == archive["path"] {
			assert.NotNil(t, k["until"], "the first archive is kept with its date")
			// Kept by retention, and the report says the store locks it too, until when.
			assert.Contains(t, k["reason"], "also locked by the store (Object Lock): governance retention until "+lock["until"].(string), k)
			firstKept = true
		}
	}
	assert.True(t, lockedKept, "purge reports the archive under a legal hold: %v", out["kept"])
	assert.True(t, firstKept, "purge reports the first, governance-locked archive: %v", out["kept"])
	for _, p := range out["purged"].([]any) {
		assert.NotEqual(t, secondPath, p.(map[string]any)["path"])
	}
	_, err := client.StatObject(ctx, bucket, strings.TrimPrefix(secondPath, "s3://"+bucket+"/"), minio.StatObjectOptions{})
	assert.NoError(t, err, "the archive under a legal hold is in the bucket")

	// No secret anywhere: outputs and every object of the bucket.
	for _, o := range runner.outputs {
		assert.NotContains(t, o, set.SecretKey)
	}
	n := 0
	for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, o.Err)
		r, err := client.GetObject(ctx, bucket, o.Key, minio.GetObjectOptions{})
		require.NoError(t, err)
		data, err := io.ReadAll(r)
		r.Close()
		require.NoError(t, err)
		s := string(data)
		if strings.HasSuffix(o.Key, ".tar.zst") {
			s = fleettest.Unzstd(t, data)
		}
		assert.NotContains(t, s, set.SecretKey, o.Key)
		n++
	}
	assert.GreaterOrEqual(t, n, 4, "archives, sidecars and tombstones were read")
}

// s3Runner runs module binaries with the archive store in a bucket of
// the local S3 server, its settings as parameters and no AWS_* variable.
type s3Runner struct {
	lib, bucket, prefix string
	f                   *fleettest.Fleet
	set                 s3store.Settings
	env                 []string
	outputs             []string
}

func newS3Runner(t *testing.T, lib string, f *fleettest.Fleet, set s3store.Settings, bucket, prefix string) *s3Runner {
	r := &s3Runner{lib: lib, bucket: bucket, prefix: prefix, f: f, set: set}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "AWS_") && !strings.HasPrefix(e, "FLEETSAFE_TEST_CRASH_AFTER=") {
			r.env = append(r.env, e)
		}
	}
	r.env = append(r.env, "FLEETSAFE_SYSTEMD_DIR="+f.SystemdDir)
	return r
}

// run runs module with the parameters kv; crash names the step after
// which it kills itself ("" for none): its result is nil when it did.
func (r *s3Runner) run(t *testing.T, crash, module string, kv ...any) map[string]any {
	t.Helper()
	args := map[string]any{"layout_file": r.f.LayoutFile, "archive_store": "s3://" + r.bucket + "/" + r.prefix,
		"s3_endpoint": r.set.Endpoint, "s3_region": r.set.Region, "s3_access_key": r.set.AccessKey,
		"s3_secret_key": r.set.SecretKey, "s3_path_style": "yes"}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(args, kv[i].(string)) // a nil value removes the parameter
			continue
		}
		args[kv[i].(string)] = kv[i+1]
	}
	data, _ := json.Marshal(args)
	argsFile := filepath.Join(t.TempDir(), "args")
	require.NoError(t, os.WriteFile(argsFile, data, 0o600))
	cmd := exec.Command(filepath.Join(r.lib, module), argsFile)
	cmd.Env = r.env
	if crash != "" {
		cmd.Env = append(cmd.Env, "FLEETSAFE_TEST_CRASH_AFTER="+crash)
	}
	stdout, err := cmd.Output()
	r.outputs = append(r.outputs, string(stdout))
	var ee *exec.ExitError
	if crash != "" && errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
		return nil // killed after the step
	}
	var out map[string]any
	require.NoError(t, json.Unmarshal(stdout, &out), "%s", stdout)
	return out
}

// destroyQuarantine removes what a soft delete moved into quarantine, as
// if the host had lost it.
func (r *s3Runner) destroyQuarantine(t *testing.T, out map[string]any) {
	t.Helper()
	for _, q := range out["quarantined"].([]any) {
		m := q.(map[string]any)
		if m["type"] == "postgresql" {
			require.NoError(t, fleettest.DropDatabasesLike(context.Background(), r.f.PG, m["to"].(string)))
		} else {
			require.NoError(t, os.RemoveAll(m["to"].(string)))
		}
	}
}

// softDelete runs instance_soft_delete until the session that filled the
// database has ended.
func (r *s3Runner) softDelete(t *testing.T, kv ...any) map[string]any {
	t.Helper()
	var out map[string]any
	for range 300 { // 30 s at most: seconds on a loaded machine
		out = r.run(t, "", "instance_soft_delete", kv...)
		if m, _ := out["msg"].(string); !strings.Contains(m, "open connection") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out
}

// TestS3_SoftDeleteKilledAtEveryStepConverges kills the real module with
// SIGKILL after each step of a soft delete into the bucket (with Object
// Lock): the instance is whole or in quarantine, a re-run finishes the
// deletion, and a restore from the bucket alone gives it back identical.
func TestS3_SoftDeleteKilledAtEveryStepConverges(t *testing.T) {
	set := s3test.Settings(t)
	bucket := s3test.Bucket(t, true)
	lib := fleettest.BuildModules(t, "instance_soft_delete", "instance_restore")
	client := s3test.Client(t)
	for _, step := range []string{"lock", "journal", "dump", "hash", "archive:committed", "archive:sidecar", "archive", "verify", "tombstone", "quarantine:config", "quarantine:database", "quarantined"} {
		t.Run(step, func(t *testing.T) {
			// Each step has its fleet, databases and prefix in the bucket.
			t.Parallel()
			f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
			before := f.Snapshot(t, "acme")
			r := newS3Runner(t, lib, f, set, bucket, strings.ReplaceAll(step, ":", "-"))
			kv := []any{"name", "acme", "reason", "crash", "object_lock", "governance", "retention_days", 1}
			killed := false
			for range 300 { // the session that filled the database may take a moment to end (30 s at most: seconds on a loaded machine)
				if out := r.run(t, step, "instance_soft_delete", kv...); out == nil {
					killed = true
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			require.True(t, killed, "the module never reached step %s", step)
			// What a by-hand reader of the bucket finds now: no RESTORE.md
			// without the archive it describes (RESTORE.md is written last).
			noOrphanRunbook(t, client, bucket, r.prefix)
			out := r.softDelete(t, kv...)
			require.Equal(t, false, out["failed"], out["msg"])
			noOrphanRunbook(t, client, bucket, r.prefix)
			require.NotEmpty(t, out["quarantined"], "the re-run finished the deletion: %v", out)
			r.destroyQuarantine(t, out)
			out = r.run(t, "", "instance_restore", "name", "acme", "source", "archive")
			require.Equal(t, false, out["failed"], out["msg"])
			assert.Equal(t, before, f.Snapshot(t, "acme"))
		})
	}
}

// noOrphanRunbook fails when a RESTORE.md or a sidecar in the bucket
// under prefix describes an archive the bucket does not hold.
func noOrphanRunbook(t *testing.T, client *minio.Client, bucket, prefix string) {
	t.Helper()
	keys := map[string]bool{}
	for o := range client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true}) {
		require.NoError(t, o.Err)
		keys[o.Key] = true
	}
	for k := range keys {
		for _, suffix := range []string{archive.RunbookSuffix, ".sha256"} {
			if archive, ok := strings.CutSuffix(k, suffix); ok && strings.HasSuffix(archive, ".tar.zst") {
				assert.True(t, keys[archive], "%s describes %s, which the bucket does not hold", k, archive)
			}
		}
	}
}

// TestEncrypted_SoftDeleteThenRestore runs the real binaries: a soft
// delete with encrypt_to into a bucket and into a local archive_dir
// leaves only age ciphertext there; with the quarantine destroyed, a
// restore without the identity, or with another, is refused and changes
// nothing; with it, the instance comes back identical; the identity's
// secret appears in no output.
func TestEncrypted_SoftDeleteThenRestore(t *testing.T) {
	set := s3test.Settings(t)
	client := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	lib := fleettest.BuildModules(t, "instance_soft_delete", "instance_restore")
	ctx := context.Background()
	operator, _ := age.GenerateX25519Identity()
	stranger, _ := age.GenerateX25519Identity()
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	require.NoError(t, os.WriteFile(keyFile, []byte("# operator\n"+operator.String()+"\n"), 0o600))
	strangerFile := filepath.Join(t.TempDir(), "stranger.txt")
	require.NoError(t, os.WriteFile(strangerFile, []byte(stranger.String()+"\n"), 0o600))
	for _, where := range []string{"s3", "dir"} {
		t.Run(where, func(t *testing.T) {
			f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
			before := f.Snapshot(t, "acme")
			r := newS3Runner(t, lib, f, set, bucket, "enc")
			var extra []any
			dir := filepath.Join(t.TempDir(), "archives")
			if where == "dir" {
				extra = []any{"archive_store", nil, "s3_endpoint", nil, "s3_region", nil, "s3_access_key", nil, "s3_secret_key", nil, "s3_path_style", nil, "archive_dir", dir}
			}
			with := func(kv ...any) []any { return append(append([]any{}, kv...), extra...) }
			del := r.softDelete(t, with("name", "acme", "reason", "enc", "encrypt_to", []any{operator.Recipient().String()})...)
			require.Equal(t, false, del["failed"], del["msg"])
			path := del["archive"].(map[string]any)["path"].(string)
			var raw []byte
			if where == "s3" {
				o, err := client.GetObject(ctx, bucket, strings.TrimPrefix(path, "s3://"+bucket+"/"), minio.GetObjectOptions{})
				require.NoError(t, err)
				raw, err = io.ReadAll(o)
				require.NoError(t, err)
			} else {
				var err error
				raw, err = os.ReadFile(path)
				require.NoError(t, err)
			}
			require.True(t, strings.HasPrefix(string(raw), "age-encryption.org/v1\n"), "the store holds ciphertext")
			assert.NotContains(t, string(raw), "manifest.json")

			r.destroyQuarantine(t, del)
			for _, idFile := range []string{"", strangerFile} {
				kv := with("name", "acme", "source", "archive")
				if idFile != "" {
					kv = append(kv, "decrypt_identity_file", idFile)
				}
				out := r.run(t, "", "instance_restore", kv...)
				require.Equal(t, true, out["failed"], "restore with identity file %q: %v", idFile, out)
				assert.Equal(t, false, out["changed"])
				assert.Contains(t, out["msg"], "encrypted with age")
				// The advice is the identity, not an older archive.
				assert.Contains(t, out["msg"], "give decrypt_identity_file")
				assert.NotContains(t, out["msg"], "name an older archive")
				for _, c := range []string{"config", "data"} {
					_, err := os.Lstat(f.Path(c, "acme"))
					assert.True(t, os.IsNotExist(err), "a refused restore wrote %s: %v", c, err)
				}
			}
			out := r.run(t, "", "instance_restore", with("name", "acme", "source", "archive", "decrypt_identity_file", keyFile)...)
			require.Equal(t, false, out["failed"], out["msg"])
			assert.Equal(t, before, f.Snapshot(t, "acme"))
			for _, o := range r.outputs {
				assert.NotContains(t, o, operator.String())
				assert.NotContains(t, o, stranger.String())
			}
		})
	}
}

// TestS3_RestoreAnywhereRelocate soft-deletes an instance of one sandbox
// host into the bucket, destroys that host's directories and database
// (quarantine included), then restores it on a second sandbox host (its
// own root, its own database prefix: every locator differs) from the
// bucket alone, through the real instance_restore: without relocate the
// archive is refused and nothing is written; with relocate the instance
// comes back identical where the second host's layout says, and the
// result and the tombstone record each component's old and new place.
func TestS3_RestoreAnywhereRelocate(t *testing.T) {
	set := s3test.Settings(t)
	client := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	lib := fleettest.BuildModules(t, "instance_soft_delete", "instance_restore")
	ctx := context.Background()
	old := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	before := old.Snapshot(t, "acme")
	elsewhere := fleettest.NewSpec(t, fleettest.Spec{App: old.App, Names: []string{"other"}, DB: true, DBPrefix: old.App + "_new_"})

	del := newS3Runner(t, lib, old, set, bucket, "moving").softDelete(t, "name", "acme", "reason", "host retired")
	require.Equal(t, false, del["failed"], del["msg"])
	newS3Runner(t, lib, old, set, bucket, "moving").destroyQuarantine(t, del)
	require.NoError(t, os.RemoveAll(old.Root))

	r := newS3Runner(t, lib, elsewhere, set, bucket, "moving")
	out := r.run(t, "", "instance_restore", "name", "acme", "source", "archive")
	require.Equal(t, true, out["failed"], "a different locator without relocate: %v", out)
	assert.Equal(t, false, out["changed"])
	assert.Contains(t, out["msg"], "locator")
	for _, c := range []string{"config", "data"} {
		_, err := os.Lstat(elsewhere.Path(c, "acme"))
		assert.True(t, os.IsNotExist(err), "a refused restore wrote %s", c)
	}

	out = r.run(t, "", "instance_restore", "name", "acme", "source", "archive", "relocate", true)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["changed"])
	assert.Equal(t, before, elsewhere.Snapshot(t, "acme"), "files and rows as they were, at the new places")
	rels := out["relocated"].([]any)
	require.NotEmpty(t, rels)
	moved := map[string]map[string]any{}
	for _, x := range rels {
		m := x.(map[string]any)
		moved[m["component"].(string)] = m
	}
	assert.Equal(t, old.Path("data", "acme"), moved["data"]["from"])
	assert.Equal(t, elsewhere.Path("data", "acme"), moved["data"]["to"])
	assert.Equal(t, old.Database("acme"), moved["database"]["from"])
	assert.Equal(t, elsewhere.Database("acme"), moved["database"]["to"])

	tsKey := strings.TrimPrefix(del["tombstone"].(map[string]any)["path"].(string), "s3://"+bucket+"/")
	o, err := client.GetObject(ctx, bucket, tsKey, minio.GetObjectOptions{})
	require.NoError(t, err)
	var ts map[string]any
	require.NoError(t, json.NewDecoder(o).Decode(&ts))
	o.Close()
	require.NotEmpty(t, ts["relocated"], "the tombstone records the relocation")
	assert.Len(t, ts["relocated"], len(rels))
}
