package softdelete_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/encrypted"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// TestRunbook_FromTheBucketAlone soft-deletes an instance into a bucket
// of the real S3 server (plain, then encrypted with age), destroys its
// quarantine, then restores it by hand from the bucket alone: the plain
// RESTORE.md object beside the archive is read with an S3 GET, and its
// blocks run literally (block 0 with the AWS CLI when it is installed,
// and age as scripts/age-up.sh builds it; the checks and restores with
// sha256sum, zstd, tar and PostgreSQL's tools). RESTORE.md holds no
// credential and no identity; the store's own checksum is in the result
// and the tombstone, and matches the server's.
func TestRunbook_FromTheBucketAlone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("restoring owners by hand needs root")
	}
	set := s3test.Settings(t)
	client := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	ageBin := ageCLI(t)
	awsBin, _ := exec.LookPath("aws")
	ctx := context.Background()

	for _, enc := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "age"}[enc]
		t.Run(name, func(t *testing.T) {
			if enc && ageBin == "" {
				t.Skip("age's command line tool is not built: run scripts/age-up.sh")
			}
			f := fleettest.New(t, true, "acme")
			before := f.Snapshot(t, "acme")
			beforeDB := tableDigest(t, f.PG, f.Database("acme"))
			waitNoConnections(t, f.PG, f.Database("acme"))

			var st store.Store = s3test.Store(t, bucket, name)
			var identity *age.X25519Identity
			if enc {
				identity, _ = age.GenerateX25519Identity()
				keys, err := encrypted.Ephemeral(encrypted.Keys{Recipients: []age.Recipient{identity.Recipient()}})
				require.NoError(t, err)
				st = encrypted.Wrap(st, keys)
			}
			req := request(f, "", "acme")
			req.Store = st
			res, err := softdelete.Delete(ctx, f.Layout, req)
			require.NoError(t, err)
			stagingTag := strings.ToLower(strings.ReplaceAll(res.Tombstone.ID, "-", "_"))
			t.Cleanup(func() { _ = fleettest.DropDatabasesLike(context.Background(), f.PG, stagingTag) })
			fetchDir := "/var/tmp/fleetsafe-" + strings.ReplaceAll(stagingTag, ".", "_")
			t.Cleanup(func() { os.RemoveAll(fetchDir) })

			// The store's own checksum: in the result, in the tombstone,
			// and the server's.
			key := strings.TrimPrefix(res.Archive.Path, "s3://"+bucket+"/")
			require.NotEmpty(t, res.Archive.StoreChecksum, "the store's checksum is recorded")
			oi, err := client.StatObject(ctx, bucket, key, minio.StatObjectOptions{Checksum: true})
			require.NoError(t, err)
			assert.Equal(t, oi.ChecksumSHA256, res.Archive.StoreChecksum, "the server's x-amz-checksum-sha256")
			var ts map[string]any
			require.NoError(t, json.Unmarshal(get(t, client, bucket, strings.TrimPrefix(res.Tombstone.Path, "s3://"+bucket+"/")), &ts))
			assert.Equal(t, res.Archive.StoreChecksum, ts["archive_store_checksum_sha256"])

			// The host loses the instance: purge removes the quarantine
			// and keeps the archive.
			_, err = softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, Store: st, KeepLast: 1, PG: f.PG,
				Now: res.Tombstone.PurgeAfter.Add(time.Minute)})
			require.NoError(t, err)
			assertAbsent(t, f.Path("data", "acme"))

			// RESTORE.md and the sidecar, plain, beside the archive.
			runbook := string(get(t, client, bucket, key+archive.RunbookSuffix))
			assert.Contains(t, string(get(t, client, bucket, key+".sha256")), res.Archive.SHA256)
			assert.NotContains(t, runbook, set.SecretKey)
			assert.NotContains(t, runbook, set.AccessKey)
			if enc {
				assert.NotContains(t, runbook, identity.String())
				assert.Contains(t, runbook, "age -d")
			}
			assert.Contains(t, runbook, "s3://"+bucket+"/"+key)
			assert.Contains(t, runbook, set.Endpoint)
			// How to pick the version fleetsafe wrote when others were put
			// over it: the listing, the sha256 to look for, get-object by
			// version id.
			assert.Contains(t, runbook, "s3api list-object-versions --bucket '"+bucket+"' --prefix '"+key+"'")
			assert.Contains(t, runbook, "whose `sha256sum` is `"+res.Archive.SHA256+"`")
			assert.Contains(t, runbook, "s3api get-object --bucket '"+bucket+"' --key '"+key+"' --version-id <VersionId>")
			// The sidecar is over the archive as the bucket holds it (the
			// ciphertext, when encrypted): sha256sum checks it without the
			// key.
			stored := sha256.Sum256(get(t, client, bucket, key))
			assert.Equal(t, hex.EncodeToString(stored[:]), res.Archive.SHA256, "the digest is over the object as stored")
			blocks := shellBlocks(runbook)
			// fetch, check, config, data, logs, database, service
			require.Len(t, blocks, 7, runbook)
			fetch := blocks[0]
			keyFile := filepath.Join(t.TempDir(), "identity.txt")
			if awsBin != "" {
				out, err := fetchBlock(awsBin, ageBin, set.AccessKey, set.SecretKey, fetch)
				require.NoError(t, err, "block 0 failed:\n%s\n--- output:\n%s", fetch, out)
			} else {
				// No AWS CLI here: the test does block 0's GETs itself.
				t.Log("the AWS CLI is not installed: block 0's copies are done by the test")
				require.NoError(t, os.Mkdir(fetchDir, 0o700))
				base := filepath.Base(key)
				require.NoError(t, os.WriteFile(filepath.Join(fetchDir, base+".sha256"), get(t, client, bucket, key+".sha256"), 0o600))
				data := get(t, client, bucket, key)
				if enc {
					// As stored, with its sidecar, in encrypted/.
					require.NoError(t, os.Mkdir(filepath.Join(fetchDir, "encrypted"), 0o700))
					require.NoError(t, os.Rename(filepath.Join(fetchDir, base+".sha256"), filepath.Join(fetchDir, "encrypted", base+".sha256")))
					require.NoError(t, os.WriteFile(filepath.Join(fetchDir, "encrypted", base), data, 0o600))
				} else {
					require.NoError(t, os.WriteFile(filepath.Join(fetchDir, base), data, 0o600))
				}
			}
			sh := newRestoreShell(t)
			if enc {
				require.NoError(t, os.Symlink(ageBin, filepath.Join(sh.bin, "age")))
				// Block 1 checks the ciphertext, then decrypts: left as is,
				// the identity placeholder fails it after the check passed.
				out, err := sh.run(blocks[1])
				require.Error(t, err, "the identity placeholder must fail the block:\n%s", out)
				assert.Contains(t, out, filepath.Base(key)+": OK", "sha256sum -c over the ciphertext, without the key")
				require.NoError(t, os.WriteFile(keyFile, []byte(identity.String()+"\n"), 0o600))
				blocks[1] = strings.ReplaceAll(blocks[1], "'<IDENTITY_FILE>'", "'"+keyFile+"'")
				os.Remove(filepath.Join(fetchDir, filepath.Base(key)))
			}
			for i, b := range blocks[1:] {
				out, err := sh.run(b)
				require.NoError(t, err, "block %d failed:\n%s\n--- output:\n%s\n--- RESTORE.md:\n%s", i+1, b, out, runbook)
			}
			assert.Equal(t, before, f.Snapshot(t, "acme"), "files, modes, owners, mtimes, links and rows as they were")
			assert.Equal(t, beforeDB, tableDigest(t, f.PG, f.Database("acme")))
		})
	}
}

// fetchBlock runs RESTORE.md's block 0 with the AWS CLI and age, the
// credentials in the environment as RESTORE.md asks.
func fetchBlock(awsBin, ageBin, access, secret, block string) (string, error) {
	cmd := exec.Command("/bin/bash", "--noprofile", "--norc", "-c", block)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	path := filepath.Dir(awsBin) + ":/usr/bin:/bin"
	if ageBin != "" {
		path = filepath.Dir(ageBin) + ":" + path
	}
	cmd.Env = append(env, "PATH="+path, "AWS_ACCESS_KEY_ID="+access, "AWS_SECRET_ACCESS_KEY="+secret, "AWS_DEFAULT_REGION=us-east-1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ageCLI returns the age binary scripts/age-up.sh builds, or "" (a
// failure when FLEETSAFE_REQUIRE_S3=1, as make test sets).
func ageCLI(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	matches, _ := filepath.Glob(filepath.Join(root, ".cache", "age-*", "bin", "age"))
	if len(matches) == 0 {
		if os.Getenv("FLEETSAFE_REQUIRE_S3") == "1" {
			t.Fatal("age is not built: run scripts/age-up.sh (make s3 does)")
		}
		return ""
	}
	return matches[len(matches)-1]
}

func get(t *testing.T, c *minio.Client, bucket, key string) []byte {
	t.Helper()
	o, err := c.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	require.NoError(t, err)
	defer o.Close()
	data, err := io.ReadAll(o)
	require.NoError(t, err, "GET %s", key)
	return data
}
