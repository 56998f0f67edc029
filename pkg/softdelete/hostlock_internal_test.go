package softdelete

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// Property: the host lock keys of two instances, each reached through the
// layout as written or through a symlinked parent, with their directories
// present, partly moved away or absent, share a key exactly when they are
// the same instance. One instance always locks the same things, whatever
// path leads to it and whatever state it is in; two instances never lock
// each other.
func TestHostLock_KeysProperty(t *testing.T) {
	root := t.TempDir()
	real := filepath.Join(root, "real")
	link := filepath.Join(root, "link")
	require.NoError(t, os.MkdirAll(real, 0o755))
	require.NoError(t, os.Symlink(real, link))
	layout := func(base string) *instance.Layout {
		body := "app: lk\nname_pattern: '^[a-z0-9-]+$'\ncomponents:\n" +
			"  - name: data\n    type: dir\n    path: " + base + "/{name}/data\n" +
			"  - name: conf\n    type: file\n    path: " + base + "/etc/{name}.ini\n" +
			"  - name: db\n    type: postgresql\n    database: lk_{name}\n" +
			"  - name: unit\n    type: systemd_unit\n    unit: lk@{name}.service\n"
		l, err := instance.ParseLayout([]byte(body), base+".yml")
		require.NoError(t, err)
		return l
	}
	layouts := []*instance.Layout{layout(real), layout(link)}
	rapid.Check(t, func(t *rapid.T) {
		names := rapid.SampledFrom([]string{"a", "b", "a-b", "ab", "a-", "b-a"})
		a, b := names.Draw(t, "a"), names.Draw(t, "b")
		for _, n := range []string{a, b} {
			switch rapid.IntRange(0, 2).Draw(t, "state-"+n) {
			case 0:
				_ = os.RemoveAll(filepath.Join(real, n))
			case 1:
				_ = os.RemoveAll(filepath.Join(real, n, "data"))
				_ = os.MkdirAll(filepath.Join(real, n), 0o755)
			case 2:
				_ = os.MkdirAll(filepath.Join(real, n, "data"), 0o755)
			}
		}
		ka := instanceLockKeys(layouts[rapid.IntRange(0, 1).Draw(t, "la")], a)
		kb := instanceLockKeys(layouts[rapid.IntRange(0, 1).Draw(t, "lb")], b)
		shared := map[string]bool{}
		for _, k := range ka {
			shared[k.key] = true
		}
		var common []string
		for _, k := range kb {
			if shared[k.key] {
				common = append(common, k.locator)
			}
		}
		if a == b && len(common) != len(kb) {
			t.Fatalf("instance %s locks different things by two paths: %v vs %v", a, ka, kb)
		}
		if a != b && len(common) > 0 {
			t.Fatalf("instances %s and %s lock the same things: %s", a, b, strings.Join(common, ", "))
		}
	})
}

// The host lock directory is created world-writable and sticky (any user
// running fleetsafe locks the same files, none removes another's), and a
// directory that would let someone remove the locks is refused: a link,
// one owned by another user.
func TestHostLock_DirectoryCannotBeUsedToStealALock(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to own directories as another user")
	}
	saved := HostLockDir
	t.Cleanup(func() { HostLockDir = saved })
	root := t.TempDir()
	l, err := instance.ParseLayout([]byte("app: lk\ncomponents:\n  - name: data\n    type: dir\n    path: "+root+"/srv/{name}\n"), "lk.yml")
	require.NoError(t, err)

	HostLockDir = filepath.Join(root, "fresh")
	unlock, err := lockInstance(l, "acme")
	require.NoError(t, err)
	unlock()
	fi, err := os.Stat(HostLockDir)
	require.NoError(t, err)
	require.Equal(t, os.ModeDir|os.ModeSticky|0o777, fi.Mode(), "created world-writable and sticky")
	files, _ := filepath.Glob(filepath.Join(HostLockDir, "*.lock"))
	require.Len(t, files, 1)
	lf, err := os.Stat(files[0])
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), lf.Mode().Perm(), "any user can open it to lock it")

	HostLockDir = filepath.Join(root, "theirs")
	require.NoError(t, os.Mkdir(HostLockDir, 0o1777))
	require.NoError(t, os.Chown(HostLockDir, 65534, 65534))
	_, err = lockInstance(l, "acme")
	require.ErrorContains(t, err, "owned by uid 65534")

	HostLockDir = filepath.Join(root, "link")
	require.NoError(t, os.Symlink(filepath.Join(root, "fresh"), HostLockDir))
	_, err = lockInstance(l, "acme")
	require.ErrorContains(t, err, "is not a directory")

	// A lock file replaced by a link is never followed.
	HostLockDir = filepath.Join(root, "fresh")
	require.NoError(t, os.Remove(files[0]))
	require.NoError(t, os.Symlink("/etc/passwd", files[0]))
	_, err = lockInstance(l, "acme")
	require.ErrorContains(t, err, "open host lock")
}

// TestHostLock_WaitsBrieflyThenRefuses: a lock released within the wait
// (a killed run whose last descriptor closes a moment after its exit) is
// taken; a lock held longer is refused, not waited for.
func TestHostLock_WaitsBrieflyThenRefuses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "k.lock")
	open := func() *os.File {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_RDONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	holder, waiter := open(), open()
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if err := flockWait(waiter, 200*time.Millisecond); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("a lock held past the wait: got %v, want EWOULDBLOCK", err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		holder.Close()
	}()
	// The bound is generous (the release comes after 300 ms): on a
	// loaded machine the releasing goroutine may run late.
	if err := flockWait(waiter, 30*time.Second); err != nil {
		t.Fatalf("a lock released within the wait was not taken: %v", err)
	}
}
