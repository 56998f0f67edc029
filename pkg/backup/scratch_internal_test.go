package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// TestDownload_RefusedWhenScratchTooSmall: a backup object that must be
// copied to a local file is refused before a byte is written when the
// scratch directory (given, or TMPDIR) is a 2 MiB tmpfs and the object is
// 3 MiB: the error names the object, the size needed and the directory
// (TMPDIR), and the tmpfs is left empty. A 512 KiB object is copied.
func TestDownload_RefusedWhenScratchTooSmall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	c := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	ctx := context.Background()
	put := func(key string, n int) {
		data := make([]byte, n)
		rand.Read(data)
		_, err := c.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(n), minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	put("big/db.dump", 3<<20)
	put("small/db.dump", 512<<10)
	dir := t.TempDir()
	require.NoError(t, exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).Run())
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	rem := newRemotes(s3test.Settings(t))

	for _, given := range []string{dir, ""} {
		if given == "" {
			t.Setenv("TMPDIR", dir)
		}
		_, _, err := rem.download(ctx, "s3://"+bucket+"/big/db.dump", given)
		var se *ScratchSpaceError
		require.ErrorAs(t, err, &se, "given %q", given)
		assert.Equal(t, int64(3<<20), se.Size)
		assert.Equal(t, dir, se.Dir)
		assert.Contains(t, err.Error(), "s3://"+bucket+"/big/db.dump")
		assert.Contains(t, err.Error(), "3.0 MiB")
		assert.Equal(t, given == "", se.TMPDIR)
		if given == "" {
			assert.Contains(t, err.Error(), "(TMPDIR)")
		}
		assert.Contains(t, se.Hint(), "TMPDIR")
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Empty(t, ents, "nothing written to the scratch directory")
	}

	f, remove, err := rem.download(ctx, "s3://"+bucket+"/small/db.dump", "")
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(512<<10), fi.Size())
	remove()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, ents, "the copy is removed")
}
