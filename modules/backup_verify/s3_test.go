package backupverify

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// TestBackupVerify_S3Rules: backups in a bucket, named by s3:// rules,
// are verified, test-restored and drilled with the s3_* parameters; the
// secret key appears nowhere in the result or the metrics file, and a
// wrong one fails the task without showing it.
func TestBackupVerify_S3Rules(t *testing.T) {
	c := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	f, _ := backedUp(t, "acme")
	dir := f.BackupDir("acme")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		_, err = c.PutObject(context.Background(), bucket, "nightly/acme/"+e.Name(), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, os.RemoveAll(dir))
	y, err := os.ReadFile(f.LayoutFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f.LayoutFile, []byte(strings.ReplaceAll(string(y), f.Root+"/backups/", "s3://"+bucket+"/nightly/")), 0o644))
	f.Layout, err = instance.LoadLayoutFile(f.LayoutFile)
	require.NoError(t, err)

	set := s3test.Settings(t)
	metrics := filepath.Join(t.TempDir(), "m.prom")
	out := call(t, f, "restore_test", "1", "drill", true, "metrics_file", metrics,
		"s3_endpoint", set.Endpoint, "s3_region", set.Region, "s3_access_key", set.AccessKey, "s3_secret_key", set.SecretKey, "s3_path_style", true)
	require.Equal(t, false, out["failed"], out["msg"])
	raw, err := json.Marshal(out)
	require.NoError(t, err)
	assert.Contains(t, string(raw), "s3://"+bucket+"/nightly/acme/db-")
	assert.Contains(t, string(raw), "restored 2 tables into a scratch database; row counts match the live database")
	assert.Equal(t, true, out["drill"].(map[string]any)["ok"], out["drill"])
	assert.NotContains(t, string(raw), set.SecretKey)
	m, err := os.ReadFile(metrics)
	require.NoError(t, err)
	assert.NotContains(t, string(m), set.SecretKey)
	assert.Contains(t, string(m), `fleetsafe_backup_status{app="`+f.App+`",name="acme",component="database"} 0`)

	out = call(t, f, "s3_endpoint", set.Endpoint, "s3_access_key", set.AccessKey, "s3_secret_key", "Wrong"+set.SecretKey, "s3_path_style", true)
	require.Equal(t, true, out["failed"], out["msg"])
	raw, err = json.Marshal(out)
	require.NoError(t, err)
	assert.Contains(t, string(raw), bucket)
	assert.NotContains(t, string(raw), set.SecretKey)
}
