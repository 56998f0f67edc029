package softdelete_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// fixtureV1 is an archive written by the code of format
// fleetsafe-archive-v1 (manifest.json first, every file's record in it),
// for the instance acme of app fixture, whose components lived under
// fixtureV1Base: data (a dir with a hard link, a symlink, an executable file,
// an empty file) and config (a file).
const (
	fixtureV1     = "../archive/testdata/v1/20261126T223757.148441Z-02ab2847.tar.zst"
	fixtureV1Base = "/tmp/fleetsafe-fixture-v1"
)

// TestFormatV1_StillVerifiesAndRestores: an archive of the first format
// passes verify-archive and restores byte-identical, with its modes,
// times, hard link and symlink.
func TestFormatV1_StillVerifiesAndRestores(t *testing.T) {
	// The manifest's locators are absolute: the test owns that path while
	// it runs (another checkout's run waits).
	lock, err := os.OpenFile(fixtureV1Base+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	require.NoError(t, err)
	require.NoError(t, unix.Flock(int(lock.Fd()), unix.LOCK_EX))
	t.Cleanup(func() { os.RemoveAll(fixtureV1Base); lock.Close() })
	require.NoError(t, os.RemoveAll(fixtureV1Base))

	ctx := context.Background()
	m, err := archive.VerifyArchive(ctx, copyFixture(t, t.TempDir()))
	require.NoError(t, err)
	assert.Equal(t, "fleetsafe-archive-v1", m.Format)
	assert.Len(t, m.Files, 10)

	archives := filepath.Join(fixtureV1Base, "archives")
	path := copyFixture(t, filepath.Join(archives, "acme"))
	l, err := instance.ParseLayout([]byte("app: fixture\ncomponents:\n  - name: data\n    type: dir\n    path: "+fixtureV1Base+"/srv/{name}\n  - name: config\n    type: file\n    path: "+fixtureV1Base+"/etc/{name}.ini\n"), "fixture.yml")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(fixtureV1Base, "srv"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(fixtureV1Base, "etc"), 0o755))
	rr, err := softdelete.Restore(ctx, l, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Source: softdelete.SourceArchive, Archive: path})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"data", "config"}, rr.Restored)

	d := filepath.Join(fixtureV1Base, "srv", "acme")
	tm := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for p, want := range map[string]string{"a.txt": "alpha\n", "sub/b.bin": "\x00\x01\x02\x03\xff",
		"sub/deeper/c.txt": "gamma gamma gamma\n", "empty": "", "sub/a-link.txt": "alpha\n",
		"../../etc/acme.ini": "[acme]\nkey=value\n"} {
		got, err := os.ReadFile(filepath.Join(d, p))
		require.NoError(t, err, p)
		assert.Equal(t, want, string(got), p)
		fi, err := os.Stat(filepath.Join(d, p))
		require.NoError(t, err)
		assert.True(t, fi.ModTime().Equal(tm), "%s mtime %s", p, fi.ModTime())
	}
	modes := map[string]os.FileMode{"a.txt": 0o640, "sub/b.bin": 0o600, "sub/deeper/c.txt": 0o755, "sub": 0o750 | os.ModeDir}
	for p, want := range modes {
		fi, err := os.Lstat(filepath.Join(d, p))
		require.NoError(t, err)
		assert.Equal(t, want, fi.Mode(), p)
	}
	a, err := os.Stat(filepath.Join(d, "a.txt"))
	require.NoError(t, err)
	b, err := os.Stat(filepath.Join(d, "sub", "a-link.txt"))
	require.NoError(t, err)
	assert.True(t, os.SameFile(a, b), "the hard link comes back linked")
	target, err := os.Readlink(filepath.Join(d, "sub", "sym"))
	require.NoError(t, err)
	assert.Equal(t, "../a.txt", target)
}

func copyFixture(t *testing.T, dir string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	for _, suffix := range []string{"", ".sha256"} {
		data, err := os.ReadFile(fixtureV1 + suffix)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(fixtureV1)+suffix), data, 0o600))
	}
	return filepath.Join(dir, filepath.Base(fixtureV1))
}
