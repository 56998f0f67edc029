package playbooks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
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
	t.Parallel()
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

// TestPlaybooks_RestoreOnAnotherHostFromABucket runs delete_instance.yml
// with fleetsafe_object_lock and fleetsafe_encrypt_to into a bucket with
// Object Lock (one prefix per host), destroys the instance's quarantine
// and database on its host, then restore_instance.yml with restore_on
// the other host (its own root and database prefix: every locator
// differs), relocate and fleetsafe_decrypt_identity_file: the archive is
// locked under governance retention, a restore_on outside the inventory
// is refused with nothing changed, and the instance comes back identical
// on the other host from the first host's prefix; the secret key appears
// nowhere in the output. The first host is then declared decommissioned,
// unreachable and outside the job's limit: the instance is still found,
// through its store only, counted once, and restored on the other host;
// without restore_on the refusal names what to give, and a gone host
// whose store cannot be read makes the search incomplete.
func TestPlaybooks_RestoreOnAnotherHostFromABucket(t *testing.T) {
	t.Parallel()
	set := s3test.Settings(t)
	client := s3test.Client(t)
	bucket := s3test.Bucket(t, true)
	a := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme", "shared"}, DB: true})
	b := fleettest.NewSpec(t, fleettest.Spec{App: a.App, Names: []string{"globex"}, DB: true, DBPrefix: a.App + "_new_"})
	var inv strings.Builder
	inv.WriteString("all:\n  vars:\n")
	fmt.Fprintf(&inv, "    fleetsafe_s3_endpoint: %q\n    fleetsafe_s3_region: %q\n    fleetsafe_s3_path_style: true\n", set.Endpoint, set.Region)
	inv.WriteString("  hosts:\n")
	for host, f := range map[string]*fleettest.Fleet{"web-a": a, "web-b": b} {
		fmt.Fprintf(&inv, "    %s:\n      ansible_connection: local\n", host)
		fmt.Fprintf(&inv, "      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n")
		fmt.Fprintf(&inv, "      fleetsafe_layout_file: %s\n", f.LayoutFile)
		fmt.Fprintf(&inv, "      fleetsafe_archive_store: s3://%s/fleet/%s\n", bucket, host)
		fmt.Fprintf(&inv, "      fleetsafe_systemd_dir: %s\n", f.SystemdDir)
	}
	dir := t.TempDir()
	invFile := filepath.Join(dir, "inventory.yml")
	require.NoError(t, os.WriteFile(invFile, []byte(inv.String()), 0o600))
	// The keys as an AWX credential injects them: an extra-vars file.
	credFile := filepath.Join(dir, "credential.yml")
	require.NoError(t, os.WriteFile(credFile, []byte(fmt.Sprintf("fleetsafe_s3_access_key: %q\nfleetsafe_s3_secret_key: %q\n", set.AccessKey, set.SecretKey)), 0o600))
	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	idFile := filepath.Join(dir, "identity.txt")
	require.NoError(t, os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600))
	lib := fleettest.BuildModules(t)
	var outputs []string
	run := func(playbook string, vars map[string]any) fleettest.Playbook {
		t.Helper()
		r := fleettest.RunPlaybookArgs(t, lib, []string{"-v", "-i", invFile, "-e", "@" + credFile, playbook}, vars)
		outputs = append(outputs, r.Output)
		return r
	}
	ctx := context.Background()
	acme := a.Snapshot(t, "acme")

	r := run("playbooks/delete_instance.yml", map[string]any{"instance_name": "acme", "reason": "host retired",
		"fleetsafe_object_lock": "governance", "fleetsafe_retention_days": 2, "fleetsafe_encrypt_to": []string{id.Recipient().String()}})
	require.NoError(t, r.Err, r.Output)
	var archive string
	for o := range client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "fleet/web-a/acme/", Recursive: true}) {
		require.NoError(t, o.Err)
		if strings.HasSuffix(o.Key, ".tar.zst") {
			archive = o.Key
		}
	}
	require.NotEmpty(t, archive, "the archive is under web-a's prefix")
	// The lock as the server reports it in a HEAD (its GetObjectRetention
	// answer is not in the form minio-go parses).
	info, err := client.StatObject(ctx, bucket, archive, minio.StatObjectOptions{})
	require.NoError(t, err)
	assert.Equal(t, "GOVERNANCE", info.Metadata.Get("X-Amz-Object-Lock-Mode"), "fleetsafe_object_lock reached the module")
	until, err := time.Parse(time.RFC3339, info.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(48*time.Hour), until, time.Hour, "fleetsafe_retention_days reached the module")

	// web-a loses acme: its quarantine and its database.
	for _, c := range []string{"config", "data", "logs"} {
		require.NoError(t, os.RemoveAll(filepath.Join(filepath.Dir(a.Path(c, "acme")), ".fleetsafe-trash")))
	}
	require.NoError(t, fleettest.DropDatabasesLike(ctx, a.PG, a.Database("acme")))

	r = run("playbooks/restore_instance.yml", map[string]any{"instance_name": "acme", "restore_on": "web-z", "relocate": true})
	require.Error(t, r.Err, r.Output)
	assert.Contains(t, r.Output, "restore_on (web-z) must be one inventory host of this job's hosts")
	_, err = os.Lstat(b.Path("config", "acme"))
	assert.True(t, os.IsNotExist(err), "a refused restore wrote on web-b: %v", err)

	// web-a is then gone for good: declared decommissioned, unreachable
	// (an SSH port nobody listens on: contacting it fails the run), its
	// layout file lost, outside the job's limit. Its prefix in the bucket
	// is all that is left, and web-b reads it with its own layout.
	gone := strings.Replace(inv.String(), "    web-a:\n      ansible_connection: local\n",
		"    web-a:\n      ansible_connection: ssh\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n      ansible_ssh_common_args: -o ConnectTimeout=2\n", 1)
	require.NotEqual(t, inv.String(), gone)
	require.NoError(t, os.WriteFile(invFile, []byte(gone), 0o600))
	require.NoError(t, os.Remove(a.LayoutFile))
	goneVars := func(vars map[string]any) map[string]any {
		vars["fleetsafe_gone_hosts"] = []string{"web-a"}
		return vars
	}
	runLimited := func(vars map[string]any) fleettest.Playbook {
		t.Helper()
		r := fleettest.RunPlaybookArgs(t, lib, []string{"-v", "-i", invFile, "-e", "@" + credFile, "--limit", "web-b", "playbooks/restore_instance.yml"}, goneVars(vars))
		outputs = append(outputs, r.Output)
		return r
	}
	// Found through web-a's store, but web-a cannot restore: refused,
	// naming what to do.
	r = runLimited(map[string]any{"instance_name": "acme"})
	require.Error(t, r.Err, r.Output)
	assert.Contains(t, r.Output, "web-a is decommissioned: give restore_on")
	_, err = os.Lstat(b.Path("config", "acme"))
	assert.True(t, os.IsNotExist(err), "a refused restore wrote on web-b: %v", err)

	r = runLimited(map[string]any{"instance_name": "acme", "restore_on": "web-b", "relocate": true,
		"fleetsafe_decrypt_identity_file": idFile})
	require.NoError(t, r.Err, r.Output)
	assert.Contains(t, r.Output, "acme on web-b: restored")
	assert.Contains(t, r.Output, "in the archive store of web-a")
	assert.Equal(t, acme, b.Snapshot(t, "acme"), "acme as it was, at web-b's places")
	_, err = os.Lstat(a.Path("config", "acme"))
	assert.True(t, os.IsNotExist(err), "nothing restored on web-a: %v", err)

	// A second decommissioned host whose store cannot be read makes the
	// search incomplete: refused, nothing restored twice.
	broken := strings.Replace(gone, "    web-a:\n", "    web-c:\n      ansible_connection: local\n      fleetsafe_layout_file: /nonexistent\n      fleetsafe_archive_store: s3://no-such-bucket-fleetsafe/fleet/web-c\n    web-a:\n", 1)
	require.NoError(t, os.WriteFile(invFile, []byte(broken), 0o600))
	r = fleettest.RunPlaybookArgs(t, lib, []string{"-v", "-i", invFile, "-e", "@" + credFile, "--limit", "web-b", "playbooks/restore_instance.yml"},
		map[string]any{"instance_name": "acme", "restore_on": "web-b", "fleetsafe_gone_hosts": []string{"web-a", "web-c"}})
	outputs = append(outputs, r.Output)
	require.Error(t, r.Err, r.Output)
	assert.Contains(t, r.Output, "the object storage of decommissioned host(s) web-c")

	for i, o := range outputs {
		assert.NotContains(t, o, set.SecretKey, "output %d shows the secret key", i)
		assert.NotContains(t, o, id.String(), "output %d shows the age identity", i)
	}
}
