package recovery_test

import (
	"bytes"
	"context"
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
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// TestRestore_S3BackupScratchTooSmall: backups live in a bucket and the
// scratch directory (TMPDIR) is a tmpfs too small for a copy of any of
// them: the restore of a destroyed database from its pg_custom dumps
// (which pg_restore reads from a file) is refused before anything is
// written; each backup is refused with the size needed and TMPDIR named
// (never "no backup found", never a half-copied file), the tmpfs is left
// empty and the database stays absent. The data directory's tar_zst
// backup is restored as it streams from the bucket, identical, with
// nothing written in TMPDIR.
func TestRestore_S3BackupScratchTooSmall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	ctx := context.Background()
	c := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	x := newFixture(t)
	dir := x.f.BackupDir("acme")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		_, err = c.PutObject(ctx, bucket, "nightly/acme/"+e.Name(), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, os.RemoveAll(dir))
	y, err := os.ReadFile(x.f.LayoutFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(x.f.LayoutFile, []byte(strings.ReplaceAll(string(y), x.f.Root+"/backups/", "s3://"+bucket+"/nightly/")), 0o644))
	x.f.Layout, err = instance.LoadLayoutFile(x.f.LayoutFile)
	require.NoError(t, err)
	x.destroy(t, "database", "data")

	scratch := t.TempDir()
	require.NoError(t, exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", scratch).Run())
	t.Cleanup(func() { exec.Command("umount", scratch).Run() })
	t.Setenv("TMPDIR", scratch)

	res, err := recovery.Restore(ctx, x.f.Layout, recovery.Request{Name: "acme", Components: []string{"database"},
		Options: x.f.Options(), Now: time.Now(), S3: s3test.Settings(t)})
	require.Error(t, err)
	require.NotNil(t, res)
	var db *recovery.ComponentResult
	for i := range res.Components {
		if res.Components[i].Component == "database" {
			db = &res.Components[i]
		}
	}
	require.NotNil(t, db)
	require.Len(t, db.Refused, 2, "both nights refused: %+v", db)
	for _, r := range db.Refused {
		assert.Contains(t, r.Reason, "must be copied to a local file")
		assert.Contains(t, r.Reason, scratch+" (TMPDIR)")
		assert.Contains(t, r.Reason, "set TMPDIR")
	}
	assert.NotContains(t, db.Reason, "no backup file found")
	left, err := os.ReadDir(scratch)
	require.NoError(t, err)
	assert.Empty(t, left, "nothing left in the scratch directory")
	inst, err := x.f.Layout.Resolve(ctx, "acme", x.f.Options())
	require.NoError(t, err)
	st, _ := inst.State("database")
	assert.False(t, st.Present, "the database was not restored")

	// A tar_zst object is restored as it streams: no room needed there.
	res, err = recovery.Restore(ctx, x.f.Layout, recovery.Request{Name: "acme", Components: []string{"data"},
		Options: x.f.Options(), Now: time.Now(), S3: s3test.Settings(t)})
	require.NoError(t, err, "%+v", res)
	assert.Equal(t, []string{"data"}, res.Restored)
	files := func(tree map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range tree {
			if strings.HasPrefix(v, "-") { // regular files: mode, owner, sha256, mtime (tar keeps whole seconds of the rest)
				out[k] = v
			}
		}
		return out
	}
	got := files(fleettest.Tree(t, x.f.Path("data", "acme")))
	assert.NotEmpty(t, got)
	assert.Equal(t, files(x.want.Trees["data"]), got, "data files restored byte for byte")
	left, err = os.ReadDir(scratch)
	require.NoError(t, err)
	assert.Empty(t, left)
}
