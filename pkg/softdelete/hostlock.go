package softdelete

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// HostLockDir holds the host-wide locks of the things instances are made
// of. Soft delete, restore and purge take one lock per component locator
// there (besides the lock in the instance's archive directory), so two
// runs on one instance never proceed at once, whatever archive_dir each
// was given. It lives in /run/lock: a tmpfs emptied at boot, when no run
// can hold a lock. Tests may point it elsewhere.
var HostLockDir = "/run/lock/fleetsafe"

// lockKey is one thing a run locks: a component's locator, as the host
// sees it.
type lockKey struct {
	component, locator, key string
}

// instanceLockKeys returns the host-wide lock keys of one instance: one per
// component, its family and locator. A path is resolved through the
// symbolic links of its longest existing prefix, so that two layouts
// reaching one directory through different paths (a symlinked parent)
// lock the same thing, before and after the component moved.
func instanceLockKeys(l *instance.Layout, name string) []lockKey {
	var out []lockKey
	for _, c := range l.Components {
		loc := c.Template.Expand(name)
		if c.IsPath() {
			loc = resolveExisting(loc)
		}
		sum := sha256.Sum256([]byte(c.Family() + "\x00" + loc))
		out = append(out, lockKey{component: c.Name, locator: c.Family() + " " + loc, key: hex.EncodeToString(sum[:16])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// lockInstance takes, without waiting, the host-wide lock of every
// component of name; it refuses when another run holds one: a *RefusedError naming the component, its locator and the
// lock file. The returned function releases them all. Lock files are never
// removed (a lock taken on a file that another run just removed is no
// lock); /run/lock is emptied at boot.
func lockInstance(l *instance.Layout, name string) (func(), error) {
	if err := os.MkdirAll(HostLockDir, 0o700); err != nil {
		return nil, fmt.Errorf("host lock directory %s: %w; nothing was changed", HostLockDir, err)
	}
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
	}
	seen := map[string]bool{}
	for _, k := range instanceLockKeys(l, name) {
		if seen[k.key] {
			continue
		}
		seen[k.key] = true
		file := filepath.Join(HostLockDir, k.key+".lock")
		f, err := os.OpenFile(file, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			release()
			return nil, fmt.Errorf("open host lock %s: %w; nothing was changed", file, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			release()
			return nil, &RefusedError{Name: name,
				Reason: fmt.Sprintf("another fleetsafe run holds the lock of this instance (host lock of component %s, %s: %s), whatever its archive_dir", k.component, k.locator, file),
				Advice: "wait for the other run (instance_soft_delete, instance_restore or instance_purge of this instance, possibly with another archive_dir) to finish, then run again"}
		}
		// For whoever looks: what the lock is of.
		_ = f.Truncate(0)
		_, _ = f.WriteAt([]byte(fmt.Sprintf("app %s instance %s component %s %s pid %d\n", l.App, name, k.component, k.locator, os.Getpid())), 0)
		held = append(held, f)
	}
	return release, nil
}
