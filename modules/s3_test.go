package modules_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
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
	lib := fleettest.BuildModules(t, "instance_soft_delete", "instance_restore", "instance_purge")
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	before := f.Snapshot(t, "acme")
	ctx := context.Background()

	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "AWS_") {
			env = append(env, e)
		}
	}
	env = append(env, "FLEETSAFE_SYSTEMD_DIR="+f.SystemdDir)
	var outputs []string
	run := func(module string, kv ...any) map[string]any {
		t.Helper()
		args := map[string]any{"layout_file": f.LayoutFile, "archive_store": "s3://" + bucket + "/fleet",
			"s3_endpoint": set.Endpoint, "s3_region": set.Region, "s3_access_key": set.AccessKey,
			"s3_secret_key": set.SecretKey, "s3_path_style": "yes"}
		for i := 0; i+1 < len(kv); i += 2 {
			args[kv[i].(string)] = kv[i+1]
		}
		data, _ := json.Marshal(args)
		argsFile := filepath.Join(t.TempDir(), "args")
		require.NoError(t, os.WriteFile(argsFile, data, 0o600))
		cmd := exec.Command(filepath.Join(lib, module), argsFile)
		cmd.Env = env
		stdout, _ := cmd.Output()
		outputs = append(outputs, string(stdout))
		var out map[string]any
		require.NoError(t, json.Unmarshal(stdout, &out), "%s", stdout)
		return out
	}
	destroyQuarantine := func(out map[string]any) {
		for _, q := range out["quarantined"].([]any) {
			m := q.(map[string]any)
			if m["type"] == "postgresql" {
				require.NoError(t, fleettest.DropDatabasesLike(ctx, f.PG, m["to"].(string)))
			} else {
				require.NoError(t, os.RemoveAll(m["to"].(string)))
			}
		}
	}

	// A bucket without Object Lock: refused before anything changes.
	out := run("instance_soft_delete", "name", "acme", "reason", "s3 test", "object_lock", "governance",
		"archive_store", "s3://"+plain+"/fleet")
	require.Equal(t, true, out["failed"], out["msg"])
	assert.Equal(t, false, out["changed"])
	assert.Contains(t, out["msg"], "does not have Object Lock enabled")
	assert.Contains(t, out["msg"], "--object-lock-enabled-for-bucket")
	assert.Equal(t, before, f.Snapshot(t, "acme"))

	// Soft delete into the bucket, locked until purge_after.
	var del map[string]any
	for range 20 { // the session that filled the database may take a moment to end
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

	// The host loses the quarantine; the bucket alone brings it back.
	destroyQuarantine(del)
	out = run("instance_restore", "name", "acme", "source", "archive")
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["changed"])
	assert.Equal(t, before, f.Snapshot(t, "acme"))

	// A second deletion under a legal hold, retention 0: purge removes
	// its quarantine and keeps its archive, saying why.
	second := run("instance_soft_delete", "name", "acme", "reason", "again", "legal_hold", true, "retention_days", 0)
	require.Equal(t, false, second["failed"], second["msg"])
	assert.Equal(t, true, second["archive_lock"].(map[string]any)["legal_hold"])
	out = run("instance_purge", "name", "acme", "keep_last", 0)
	require.Equal(t, false, out["failed"], out["msg"])
	secondPath := second["archive"].(map[string]any)["path"].(string)
	var lockedKept bool
	for _, k := range out["kept"].([]any) {
		k := k.(map[string]any)
		if k["path"] == secondPath && strings.Contains(k["reason"].(string), "Object Lock") && strings.Contains(k["reason"].(string), "legal hold") {
			lockedKept = true
		}
		if k["path"] == archive["path"] {
			assert.NotNil(t, k["until"], "the first archive is kept with its date")
		}
	}
	assert.True(t, lockedKept, "purge reports the archive under a legal hold: %v", out["kept"])
	for _, p := range out["purged"].([]any) {
		assert.NotEqual(t, secondPath, p.(map[string]any)["path"])
	}
	_, err := client.StatObject(ctx, bucket, strings.TrimPrefix(secondPath, "s3://"+bucket+"/"), minio.StatObjectOptions{})
	assert.NoError(t, err, "the archive under a legal hold is in the bucket")

	// No secret anywhere: outputs and every object of the bucket.
	for _, o := range outputs {
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
