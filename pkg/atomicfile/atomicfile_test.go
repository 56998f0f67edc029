package atomicfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/atomicfile"
)

// version is the content of version i: size bytes, all equal to i, so that
// a mix of two versions or a cut one is recognised.
func version(i, size int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }

// whole tells whether data is one whole version of size bytes.
func whole(data []byte, size int) bool {
	return len(data) == size && bytes.Count(data, data[:1]) == size
}

func temps(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	require.NoError(t, err)
	return m
}

// TestWriteFile_ModeAsGiven: the file gets the mode asked for, whatever
// the umask, and replaces the previous one.
func TestWriteFile_ModeAsGiven(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
	require.NoError(t, atomicfile.WriteFile(path, []byte("new"), 0o644))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new", string(data))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	assert.Empty(t, temps(t, dir))
}

// TestWriteFile_FullDisk: on a full disk (a tmpfs of 1 MiB) the write
// fails with ENOSPC naming the file, the previous file stays whole and no
// temporary file is left.
func TestWriteFile_FullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "state.json")
	require.NoError(t, atomicfile.WriteFile(path, version(1, 600<<10), 0o600))

	err := atomicfile.WriteFile(path, version(2, 600<<10), 0o600)
	require.Error(t, err, "two copies of 600 KiB do not fit in 1 MiB")
	assert.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
	assert.Contains(t, err.Error(), path)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(version(1, 600<<10), data), "the previous file is untouched")
	assert.Empty(t, temps(t, dir), "no temporary file left")

	// The streaming form too, and the space is all given back.
	a, err := atomicfile.Create(path, 0o600)
	require.NoError(t, err)
	_, werr := a.Write(version(3, 2<<20))
	require.Error(t, werr)
	a.Abort()
	assert.Empty(t, temps(t, dir))
	require.NoError(t, atomicfile.WriteFile(path, version(4, 300<<10), 0o600), "the space of the failed writes is free again")
}

// TestWriteFile_SymlinkDestination: a destination that is a symbolic link
// (to a file outside the directory, or dangling to a path outside) is
// replaced by a regular file; the link's target is never written.
func TestWriteFile_SymlinkDestination(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "victim")
	require.NoError(t, os.WriteFile(target, []byte("keep me"), 0o600))
	path := filepath.Join(dir, "f")
	require.NoError(t, os.Symlink(target, path))
	require.NoError(t, atomicfile.WriteFile(path, []byte("new"), 0o600))
	data, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "keep me", string(data), "the link's target is untouched")
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	assert.True(t, fi.Mode().IsRegular(), "the link is replaced by a regular file")

	dangling := filepath.Join(outside, "created")
	path2 := filepath.Join(dir, "g")
	require.NoError(t, os.Symlink(dangling, path2))
	require.NoError(t, atomicfile.WriteFile(path2, []byte("new"), 0o600))
	_, err = os.Lstat(dangling)
	assert.True(t, errors.Is(err, os.ErrNotExist), "nothing created through a dangling link: %v", err)
	assert.Empty(t, temps(t, dir))
}

// TestWriteFile_ConcurrentWriters: writers replacing the same file at the
// same time each rename a whole file of their own: a reader all along sees
// one whole version, never a mix, and no temporary file is left.
func TestWriteFile_ConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	const size = 64 << 10
	require.NoError(t, atomicfile.WriteFile(path, version(0, size), 0o600))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 1; w <= 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if err := atomicfile.WriteFile(path, version(w*10+i%10, size), 0o600); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	reads := 0
	for running := true; running; reads++ {
		select {
		case <-done:
			running = false
		default:
		}
		data, err := os.ReadFile(path)
		require.NoError(t, err, "the file is always there")
		require.True(t, whole(data, size), "a reader saw a mixed or cut file of %d bytes", len(data))
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Greater(t, reads, 5)
	assert.Empty(t, temps(t, dir))
}

// TestCommit_RenameFails: when the rename fails (the destination is a
// non-empty directory) the temporary file is removed and the error names
// the destination.
func TestCommit_RenameFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d")
	require.NoError(t, os.MkdirAll(filepath.Join(path, "x"), 0o700))
	err := atomicfile.WriteFile(path, []byte("new"), 0o600)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Empty(t, temps(t, dir))
	_, err = os.Stat(filepath.Join(path, "x"))
	assert.NoError(t, err)
}

// TestAbort: an aborted replacement leaves the destination as it was and
// no temporary file; Abort after Commit does nothing; Commit twice fails.
func TestAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
	a, err := atomicfile.Create(path, 0o600)
	require.NoError(t, err)
	_, err = a.Write([]byte("half"))
	require.NoError(t, err)
	a.Abort()
	data, _ := os.ReadFile(path)
	assert.Equal(t, "old", string(data))
	assert.Empty(t, temps(t, dir))

	a, err = atomicfile.Create(path, 0o600)
	require.NoError(t, err)
	_, _ = a.Write([]byte("new"))
	require.NoError(t, a.Commit())
	a.Abort()
	assert.Error(t, a.Commit())
	data, _ = os.ReadFile(path)
	assert.Equal(t, "new", string(data))
}

// killSize is the size of each version the killed child writes: large
// enough that a kill often lands in the middle of a write.
const killSize = 1 << 20

// TestWriteFile_SIGKILL: a process killed with SIGKILL at a random instant
// while it replaces a file, again and again, leaves the file whole: the
// previous version or a new one, never a partial one. (What a kill can
// leave is a temporary file, named .<base>.*.tmp for the callers' sweeps.)
func TestWriteFile_SIGKILL(t *testing.T) {
	if p := os.Getenv("ATOMICFILE_CHILD"); p != "" {
		for i := 1; ; i++ {
			if err := atomicfile.WriteFile(p, version(i%250+1, killSize), 0o600); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for round := 0; round < 12; round++ {
		require.NoError(t, atomicfile.WriteFile(path, version(0, killSize), 0o600))
		cmd := exec.Command(os.Args[0], "-test.run=^TestWriteFile_SIGKILL$")
		cmd.Env = append(os.Environ(), "ATOMICFILE_CHILD="+path)
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(5+rand.IntN(60)) * time.Millisecond)
		require.NoError(t, cmd.Process.Kill())
		err := cmd.Wait()
		var ee *exec.ExitError
		require.True(t, errors.As(err, &ee), "the child was killed, not finished: %v", err)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		require.True(t, whole(data, killSize), "round %d: a partial file of %d bytes", round, len(data))
		for _, tmp := range temps(t, dir) {
			require.NoError(t, os.Remove(tmp))
		}
		t.Logf("round %d: version %s", round, strconv.Itoa(int(data[0])))
	}
}

// TestRemoveStale: the old temporary files of path go; a recent one (a
// writer at work), another file's (.f.x.123.tmp is f.x's) and files that
// are not temporary files stay.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	long := time.Now().Add(-2 * time.Hour)
	names := map[string]bool{ // name: removed
		".f.123.tmp":   true,
		".f.456.tmp":   false, // recent
		".f.x.789.tmp": false, // f.x's
		".f..tmp":      false,
		".f.abc.tmp":   false,
		"f":            false,
	}
	for n, removed := range names {
		p := filepath.Join(dir, n)
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
		if removed || n != ".f.456.tmp" {
			require.NoError(t, os.Chtimes(p, long, long))
		}
	}
	atomicfile.RemoveStale(path, time.Hour)
	for n, removed := range names {
		_, err := os.Lstat(filepath.Join(dir, n))
		assert.Equal(t, removed, errors.Is(err, os.ErrNotExist), "%s removed", n)
	}
}
