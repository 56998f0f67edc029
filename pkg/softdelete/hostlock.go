package softdelete

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

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

// hostLockDir makes sure the lock directory exists and cannot be used to
// steal a lock: it is a real directory (never a link), owned by root or by
// the user running fleetsafe, and, when others may write to it, sticky
// (like /run/lock itself: nobody removes another user's lock file). It is
// created world-writable and sticky, so that fleetsafe run by an
// unprivileged user (become: false) and by root lock the same files.
func hostLockDir() error {
	dir := HostLockDir
	if err := os.Mkdir(dir, 0o755); err == nil {
		if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
			return fmt.Errorf("host lock directory %s: %w; nothing was changed", dir, err)
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("host lock directory %s: %w; nothing was changed", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("host lock directory %s: %w; nothing was changed", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("host lock directory %s is not a directory (%s); remove it and run again; nothing was changed", dir, fi.Mode().Type())
	case !ok:
		return fmt.Errorf("host lock directory %s: no owner information; nothing was changed", dir)
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("host lock directory %s is owned by uid %d, neither root nor this user: whoever owns it could remove the locks of fleetsafe runs; remove it (it is recreated) and run again; nothing was changed", dir, st.Uid)
	case int(st.Uid) == os.Geteuid() && (fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0):
		// Ours, from an older run or a umask: as it is created.
		if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
			return fmt.Errorf("host lock directory %s: %w; nothing was changed", dir, err)
		}
	case fi.Mode().Perm()&0o002 != 0 && fi.Mode()&os.ModeSticky == 0:
		return fmt.Errorf("host lock directory %s is writable by everyone without the sticky bit: anyone could remove the locks of fleetsafe runs; chmod +t it, or remove it (it is recreated), and run again; nothing was changed", dir)
	}
	return nil
}

// lockInstance takes, without waiting, the host-wide lock of every
// component of name; it refuses when another run holds one: a
// *RefusedError naming the component, its locator and the lock file. The
// returned function releases them all. Lock files are never removed (a
// lock taken on a file that another run just removed is no lock); they
// are readable by all, so that any user can lock them, and /run/lock is
// emptied at boot.
func lockInstance(l *instance.Layout, name string) (func(), error) {
	if err := hostLockDir(); err != nil {
		return nil, err
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
		f, err := os.OpenFile(file, os.O_CREATE|os.O_RDONLY|syscall.O_NOFOLLOW, 0o644)
		if err != nil {
			release()
			return nil, fmt.Errorf("open host lock %s (component %s, %s): %w; nothing was changed", file, k.component, k.locator, err)
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().Perm() != 0o644 {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == os.Geteuid() {
				_ = f.Chmod(0o644) // whatever the umask: other users lock it too
			}
		}
		if err := flockWait(f, hostLockWait); err != nil {
			f.Close()
			release()
			return nil, &RefusedError{Name: name,
				Reason: fmt.Sprintf("another fleetsafe run holds the lock of this instance (host lock of component %s, %s: %s), whatever its archive_dir", k.component, k.locator, file),
				Advice: "wait for the other run (instance_soft_delete, instance_restore or instance_purge of this instance, possibly with another archive_dir) to finish, then run again"}
		}
		// A lock on a file no longer in place is no lock.
		held1, herr := f.Stat()
		now, nerr := os.Lstat(file)
		if herr != nil || nerr != nil || !os.SameFile(held1, now) {
			f.Close()
			release()
			return nil, &RefusedError{Name: name, Reason: fmt.Sprintf("the host lock file %s was replaced while it was taken", file),
				Advice: "run again"}
		}
		held = append(held, f)
	}
	return release, nil
}

// hostLockWait is how long a run waits for a host lock before it refuses.
// A run killed with SIGKILL releases its locks when its last file
// descriptor closes, which can be a moment later than its exit: a child it
// was starting shares the descriptor between fork and exec. The model-based
// soak found a re-run refused in that moment. A live run holds its locks
// far longer than this, and is still refused.
const hostLockWait = 2 * time.Second

// flockWait takes an exclusive flock on f, retrying for up to wait.
func flockWait(f *os.File, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil || !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
