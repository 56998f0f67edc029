package instanceinfo

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// TestInstanceInfo_DamageS3Rules: backups live in a bucket, named by
// s3:// rules, and no AWS_* variable is set: damage=true reaches them with
// the s3_* parameters alone (as backup_verify does), lists the instance
// that lost its data with its newest good backup in the bucket, and the
// secret key appears nowhere in the result; with a wrong secret the plan
// says the bucket refused the listing (never "no backup found"), without
// showing the secret.
func TestInstanceInfo_DamageS3Rules(t *testing.T) {
	ctx := context.Background()
	c := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	set := s3test.Settings(t)
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	f := fleettest.NewSpec(t, fleettest.Spec{DB: true, Backups: true, Files: 2, Names: []string{"acme", "globex"}})
	for _, n := range []string{"acme", "globex"} {
		_, err := f.WriteBackups(ctx, n, time.Now().Add(-time.Hour))
		require.NoError(t, err)
		dir := f.BackupDir(n)
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range ents {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
			_, err = c.PutObject(ctx, bucket, "nightly/"+n+"/"+e.Name(), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, os.RemoveAll(dir))
	}
	y, err := os.ReadFile(f.LayoutFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f.LayoutFile, []byte(strings.ReplaceAll(string(y), f.Root+"/backups/", "s3://"+bucket+"/nightly/")), 0o644))
	f.Layout, err = instance.LoadLayoutFile(f.LayoutFile)
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(f.Path("data", "acme")))

	s3 := []any{"s3_endpoint", set.Endpoint, "s3_region", set.Region, "s3_access_key", set.AccessKey, "s3_secret_key", set.SecretKey, "s3_path_style", true}
	out := call(t, f, append([]any{"damage", true}, s3...)...)
	require.Equal(t, false, out["failed"], out["msg"])
	dmg := out["damaged"].([]any)
	require.Len(t, dmg, 1, "%v", out)
	a := dmg[0].(map[string]any)
	assert.Equal(t, "acme", a["name"])
	assert.Equal(t, []any{"data"}, a["missing"])
	assert.Equal(t, true, a["restorable"], "%v", a)
	raw, err := json.Marshal(out)
	require.NoError(t, err)
	assert.Contains(t, string(raw), "s3://"+bucket+"/nightly/acme/data-", "the plan names the backup in the bucket")
	assert.NotContains(t, string(raw), set.SecretKey)

	wrong := append([]any{"damage", true}, s3...)
	wrong[9] = "Wrong" + set.SecretKey
	out = call(t, f, wrong...)
	raw, err = json.Marshal(out)
	require.NoError(t, err)
	// Not "no backup found": the plan says the bucket refused the listing.
	assert.Contains(t, string(raw), "its backups could not be listed", "%s", raw)
	assert.Contains(t, string(raw), "Access Denied")
	assert.NotContains(t, string(raw), "no backup file found")
	assert.Contains(t, string(raw), bucket)
	assert.NotContains(t, string(raw), set.SecretKey)
}
