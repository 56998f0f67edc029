package playbooks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// TestPlaybooks_ArchiveStoreInABucket runs delete_instance.yml,
// restore_instance.yml and purge_instances.yml with the archives in a
// bucket of the real S3 server (fleetsafe_archive_store, one prefix per
// host, and the s3 settings as group vars, the secret among them): the
// deletion writes the archive, its sidecar, RESTORE.md and the tombstone
// to the host's prefix; with the quarantine lost, the restore finds the
// host from the bucket and brings the instance back identical; purge
// runs; the secret key appears nowhere in the output (-v), and a
// controller copy of an archive in a bucket is refused.
func TestPlaybooks_ArchiveStoreInABucket(t *testing.T) {
	set := s3test.Settings(t)
	client := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	a := fleettest.New(t, true, "acme", "shared")
	b := fleettest.New(t, true, "globex", "shared")
	hosts := map[string]*fleettest.Fleet{"web-a": a, "web-b": b}
	var inv strings.Builder
	inv.WriteString("all:\n  vars:\n")
	fmt.Fprintf(&inv, "    fleetsafe_s3_endpoint: %q\n    fleetsafe_s3_region: %q\n", set.Endpoint, set.Region)
	fmt.Fprintf(&inv, "    fleetsafe_s3_access_key: %q\n    fleetsafe_s3_secret_key: %q\n    fleetsafe_s3_path_style: true\n", set.AccessKey, set.SecretKey)
	inv.WriteString("  hosts:\n")
	for host, f := range hosts {
		fmt.Fprintf(&inv, "    %s:\n      ansible_connection: local\n", host)
		fmt.Fprintf(&inv, "      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n")
		fmt.Fprintf(&inv, "      fleetsafe_layout_file: %s\n", f.LayoutFile)
		fmt.Fprintf(&inv, "      fleetsafe_archive_store: s3://%s/fleet/%s\n", bucket, host)
		fmt.Fprintf(&inv, "      fleetsafe_systemd_dir: %s\n", f.SystemdDir)
	}
	invFile := filepath.Join(t.TempDir(), "inventory.yml")
	require.NoError(t, os.WriteFile(invFile, []byte(inv.String()), 0o600))
	lib := fleettest.BuildModules(t)
	var outputs []string
	run := func(playbook string, vars map[string]any) fleettest.Playbook {
		t.Helper()
		r := fleettest.RunPlaybookArgs(t, lib, []string{"-v", "-i", invFile, playbook}, vars)
		outputs = append(outputs, r.Output)
		return r
	}
	ctx := context.Background()
	acme := a.Snapshot(t, "acme")

	// A controller copy of an archive that lives in a bucket: refused.
	r := run("playbooks/delete_instance.yml", map[string]any{"instance_name": "acme", "reason": "left",
		"fleetsafe_fetch_archive": true, "fleetsafe_fetch_dir": t.TempDir()})
	require.Error(t, r.Err, r.Output)
	assert.Contains(t, r.Output, "off the host already")
	assert.Equal(t, acme, a.Snapshot(t, "acme"))

	r = run("playbooks/delete_instance.yml", map[string]any{"instance_name": "acme", "reason": "left"})
	require.NoError(t, r.Err, r.Output)
	var keys []string
	for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "fleet/", Recursive: true}) {
		require.NoError(t, o.Err)
		keys = append(keys, o.Key)
	}
	var archive, runbook, sidecar, tombstone bool
	for _, k := range keys {
		assert.True(t, strings.HasPrefix(k, "fleet/web-a/acme/"), "only web-a's prefix holds acme: %s", k)
		archive = archive || strings.HasSuffix(k, ".tar.zst")
		runbook = runbook || strings.HasSuffix(k, ".tar.zst.RESTORE.md")
		sidecar = sidecar || strings.HasSuffix(k, ".tar.zst.sha256")
		tombstone = tombstone || strings.HasSuffix(k, ".tombstone.json")
	}
	assert.True(t, archive && runbook && sidecar && tombstone, "archive, RESTORE.md, sidecar and tombstone in the bucket: %v", keys)

	// The host loses the quarantine: the search finds web-a from the
	// bucket, and the archive alone brings acme back.
	for _, c := range []string{"config", "data", "logs"} {
		trash, _ := filepath.Glob(filepath.Join(filepath.Dir(a.Path(c, "acme")), ".fleetsafe-trash", "*"))
		for _, d := range trash {
			require.NoError(t, os.RemoveAll(d))
		}
	}
	r = run("playbooks/restore_instance.yml", map[string]any{"instance_name": "acme", "source": "archive"})
	require.NoError(t, r.Err, r.Output)
	assert.Equal(t, acme, a.Snapshot(t, "acme"))

	r = run("playbooks/purge_instances.yml", map[string]any{"instance_name": "acme"})
	require.NoError(t, r.Err, r.Output)

	for i, o := range outputs {
		assert.NotContains(t, o, set.SecretKey, "output %d shows the secret key", i)
	}
}
