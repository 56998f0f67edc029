package softdelete_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts, chattr, capabilities)")
	}
}

// mount runs mount(8) with args on dir and unmounts it at cleanup.
func mount(t *testing.T, dir string, args ...string) {
	t.Helper()
	needRoot(t)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	out, err := exec.Command("mount", append(args, dir)...).CombinedOutput()
	require.NoError(t, err, "mount: %s", out)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
}

// fill writes a file into dir until its filesystem is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	// The last partial page too.
	for {
		if _, err := f.Write(buf[:1]); err != nil {
			break
		}
	}
	return p
}

// TestHoles_FullDiskAtFinalTombstone is case 7: the archive fits on a
// small tmpfs, every component moves, then the final tombstone cannot be
// written. The result must say changed, failed, the state left and how to
// finish; a re-run with space converges and a restore gives all back.
func TestHoles_FullDiskAtFinalTombstone(t *testing.T) {
	needRoot(t)
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	before := f.Snapshot(t, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	mount(t, archives, "-t", "tmpfs", "-o", "size=4m", "tmpfs")
	var filler string
	req := request(f, archives, "acme")
	req.AfterStep = func(step string) {
		if step == "quarantine:service" { // the last move
			filler = fill(t, archives)
		}
	}
	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.Error(t, err)
	var ie *softdelete.IncompleteError
	require.ErrorAs(t, err, &ie)
	assert.ErrorIs(t, err, syscall.ENOSPC)
	require.NotNil(t, res, "what moved is reported with the error")
	assert.True(t, res.Changed, "every component moved: changed")
	assert.Len(t, res.Quarantined, 4)
	assert.Equal(t, softdelete.StateQuarantining, res.Tombstone.State)
	assert.Contains(t, err.Error(), "state left: quarantining")
	assert.Contains(t, ie.Hint(), "run the same task again")
	ts, rerr := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, rerr)
	assert.Equal(t, softdelete.StateQuarantining, ts.State, "the journal says what is true")

	// Still full: the re-run fails the same honest way, nothing lost.
	req.AfterStep = nil
	res2, err := softdelete.Delete(ctx, f.Layout, req)
	require.ErrorAs(t, err, &ie)
	assert.True(t, res2.Changed)

	// With space, a re-run converges.
	require.NoError(t, os.Remove(filler))
	res3, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	assert.True(t, res3.Changed)
	assert.Equal(t, "completed an interrupted deletion", res3.Msg)
	assert.Equal(t, softdelete.StateQuarantined, res3.Tombstone.State)
	res4, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	assert.False(t, res4.Changed)

	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, before, f.Snapshot(t, "acme"))
}

// TestHoles_ArchiveDirInsideAComponent is case 7's second half: an
// archive_dir inside or above any instance's component is refused before
// anything is created, naming both.
func TestHoles_ArchiveDirInsideAComponent(t *testing.T) {
	f := fleettest.New(t, false, "acme", "globex")
	ctx := context.Background()
	data := f.Path("data", "acme")
	cases := map[string]string{
		"inside the target":        filepath.Join(data, "archives"),
		"inside another instance":  filepath.Join(f.Path("data", "globex"), "backups"),
		"inside a future instance": filepath.Join(filepath.Dir(f.Path("config", "acme")), "initech", "archives"),
		"containing components":    filepath.Dir(filepath.Dir(data)),
		"the component itself":     f.Path("config", "acme"),
	}
	for name, dir := range cases {
		t.Run(name, func(t *testing.T) {
			snap := f.Snapshot(t, "acme")
			for _, check := range []bool{true, false} {
				req := request(f, dir, "acme")
				req.CheckMode = check
				_, err := softdelete.Delete(ctx, f.Layout, req)
				var re *softdelete.RefusedError
				require.ErrorAs(t, err, &re)
				assert.Contains(t, err.Error(), dir)
				assert.Contains(t, err.Error(), "component")
			}
			assert.Equal(t, snap, f.Snapshot(t, "acme"))
			if name != "the component itself" && name != "containing components" {
				_, err := os.Lstat(dir)
				assert.True(t, os.IsNotExist(err), "nothing created")
			}
		})
	}
	// Through a symbolic link too.
	link := filepath.Join(t.TempDir(), "archives-link")
	require.NoError(t, os.Symlink(data, link))
	_, err := softdelete.Delete(ctx, f.Layout, request(f, filepath.Join(link, "sub"), "acme"))
	var re *softdelete.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, err.Error(), "really")
}

// TestHoles_RetentionDays is case 9: 0 means purge may act at once, and is
// recorded so; negatives are refused; nothing becomes 30 silently.
func TestHoles_RetentionDays(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	req := request(f, archives, "acme")
	req.RetentionDays = -1
	_, err := softdelete.Delete(ctx, f.Layout, req)
	var re *softdelete.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, err.Error(), "retention_days is -1")
	_, err = os.Stat(archives)
	assert.True(t, os.IsNotExist(err))

	req.RetentionDays = 0
	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	assert.Equal(t, res.Tombstone.DeletedAt, res.Tombstone.PurgeAfter)
	ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, 0, ts.RetentionDays)
	purged, err := softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 1, Now: time.Now()})
	require.NoError(t, err)
	assert.NotEmpty(t, purged, "eligible at once")
}

// TestHoles_MountsInsideAComponent is case 11: another instance's
// directory bind-mounted inside the target (same filesystem, same st_dev)
// and a tmpfs mounted inside a component are both named before anything
// moves; nothing of them is archived.
func TestHoles_MountsInsideAComponent(t *testing.T) {
	needRoot(t)
	f := fleettest.New(t, false, "acme", "globex")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	bind := filepath.Join(f.Path("data", "acme"), "shared")
	mount(t, bind, "--bind", f.Path("data", "globex"))
	tmp := filepath.Join(f.Path("config", "acme"), "run")
	mount(t, tmp, "-t", "tmpfs", "-o", "size=1m", "tmpfs")
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "live"), []byte("x"), 0o600))
	acme, globex := f.Snapshot(t, "acme"), f.Snapshot(t, "globex")
	for _, check := range []bool{true, false} {
		req := request(f, archives, "acme")
		req.CheckMode = check
		req.AcceptLosses = archive.AcceptableLosses // never accepts a crossing
		_, err := softdelete.Delete(ctx, f.Layout, req)
		var fe *archive.FindingsError
		require.ErrorAs(t, err, &fe)
		var paths []string
		for _, x := range fe.Findings {
			assert.Equal(t, archive.LossMount, x.Kind)
			paths = append(paths, x.Path)
		}
		assert.ElementsMatch(t, []string{bind, tmp}, paths, "every mount point, at once")
		assert.Contains(t, err.Error(), "mount point")
	}
	assert.Equal(t, acme, f.Snapshot(t, "acme"))
	assert.Equal(t, globex, f.Snapshot(t, "globex"))
	_, err := os.Stat(archives)
	assert.True(t, os.IsNotExist(err), "no archive directory left behind")
}

// TestHoles_HardLinkAcrossComponents is case 15 (collector side): a file
// linked from two components is stored whole in each, the manifest says
// so, and the archive restores.
func TestHoles_HardLinkAcrossComponents(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	first := filepath.Join(f.Path("config", "acme"), "development.ini")
	second := filepath.Join(f.Path("data", "acme"), "copy-of-config.ini")
	third := filepath.Join(f.Path("data", "acme"), "preview", "another-name.ini")
	require.NoError(t, os.Link(first, second))
	require.NoError(t, os.Link(first, third))
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	m, err := archive.VerifyArchive(ctx, res.Archive.Path)
	require.NoError(t, err)
	types := map[string]archive.FileEntry{}
	for _, e := range m.Files {
		types[e.Path] = e
	}
	cfg := types["components/config/development.ini"]
	assert.Equal(t, "file", cfg.Type)
	cp := types["components/data/copy-of-config.ini"]
	assert.Equal(t, "file", cp.Type, "stored whole in its own component")
	assert.Equal(t, "components/config/development.ini", cp.SameFileAs)
	an := types["components/data/preview/another-name.ini"]
	assert.Equal(t, "hardlink", an.Type, "within one component, still a link")
	purgeQuarantine(t, f, res)
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	a, _ := os.Stat(second)
	b, _ := os.Stat(third)
	assert.True(t, os.SameFile(a, b))
}

// TestHoles_LiveWriterDuringDelete is case 17: a writer appends to a file
// while the instance is deleted. The deletion never reports a verified
// archive over a difference: it refuses, and everything is in place.
func TestHoles_LiveWriterDuringDelete(t *testing.T) {
	for _, at := range []string{"verify", "quarantine:config"} {
		t.Run(at, func(t *testing.T) {
			f := fleettest.New(t, false, "acme")
			ctx := context.Background()
			archives := filepath.Join(t.TempDir(), "archives")
			log := filepath.Join(f.Path("data", "acme"), "app.log")
			require.NoError(t, os.WriteFile(log, []byte("start\n"), 0o644))
			var wg sync.WaitGroup
			stop := make(chan struct{})
			req := request(f, archives, "acme")
			req.AfterStep = func(step string) {
				if step != at {
					return
				}
				// A live writer appends between the archive and the
				// rename (or between two renames). The step goes on
				// once its first line is written (not after a fixed
				// delay, which a loaded machine can outlast before the
				// writer has written anything).
				wrote := make(chan struct{})
				wg.Go(func() {
					first := sync.OnceFunc(func() { close(wrote) })
					defer first()
					w, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
					if err != nil {
						t.Errorf("the late writer cannot open %s: %v", log, err)
						return
					}
					defer w.Close()
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := w.WriteString("late line\n"); err != nil {
							t.Errorf("the late writer cannot append to %s: %v", log, err)
							return
						}
						first()
						time.Sleep(time.Millisecond)
					}
				})
				<-wrote
			}
			res, err := softdelete.Delete(ctx, f.Layout, req)
			close(stop)
			wg.Wait()
			var le *softdelete.LateChangeError
			require.ErrorAs(t, err, &le)
			assert.Contains(t, err.Error(), "app.log")
			if res != nil {
				assert.Nil(t, res.Archive, "no verified archive reported over a difference")
			}
			for _, c := range []string{"config", "data"} {
				_, err := os.Stat(f.Path(c, "acme"))
				assert.NoError(t, err, "%s is in place", c)
			}
			assert.Empty(t, archivesOf(t, archives), "the archive that missed the lines is removed")
			for _, c := range []string{"config", "data"} {
				_, err := os.Lstat(filepath.Join(filepath.Dir(f.Path(c, "acme")), softdelete.TrashDir))
				assert.True(t, os.IsNotExist(err), "no empty trash left for %s", c)
			}
			// Once the writer stopped, the deletion goes through.
			res, err = softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
			require.NoError(t, err)
			assert.True(t, res.Archive.Verified)
		})
	}
}

// aclBytes encodes a POSIX ACL xattr giving user 1000 rw.
func aclBytes() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{1, 6, 0xffffffff}, {2, 6, 1000}, {4, 4, 0xffffffff}, {0x10, 6, 0xffffffff}, {0x20, 4, 0xffffffff}} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// TestHoles_MetadataNeverDroppedSilently is case 17: ACLs, extended
// attributes, capabilities and inode flags are each named before anything
// moves; an accepted loss is recorded in the manifest and the result;
// immutable and append-only files are always refused.
func TestHoles_MetadataNeverDroppedSilently(t *testing.T) {
	needRoot(t)
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	data := f.Path("data", "acme")
	withACL := filepath.Join(data, "depot", "a1", "file-001.bin")
	withXattr := filepath.Join(data, "depot", "a1", "file-002.bin")
	withCap := filepath.Join(data, "depot", "a1", "file-003.bin")
	noDump := filepath.Join(data, "depot", "a1", "file-004.bin")
	require.NoError(t, syscall.Setxattr(withACL, "system.posix_acl_access", aclBytes(), 0))
	require.NoError(t, syscall.Setxattr(withXattr, "user.origin", []byte("upload"), 0))
	// cap_net_bind_service, permitted and effective (vfs_cap_data v2).
	capData := binary.LittleEndian.AppendUint32(nil, 0x02000001)
	capData = binary.LittleEndian.AppendUint32(capData, 1<<10)
	capData = append(capData, make([]byte, 12)...)
	require.NoError(t, syscall.Setxattr(withCap, "security.capability", capData, 0))
	chattr(t, "+d", noDump)
	before := f.Snapshot(t, "acme")

	_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	var fe *archive.FindingsError
	require.ErrorAs(t, err, &fe)
	kinds := map[string]string{}
	for _, x := range fe.Findings {
		kinds[x.Path] = x.Kind
	}
	assert.Equal(t, map[string]string{withACL: archive.LossACL, withXattr: archive.LossXattr,
		withCap: archive.LossCapability, noDump: archive.LossFlags}, kinds)
	assert.Contains(t, err.Error(), "user.origin")
	assert.Contains(t, fe.Hint(), "accept_losses: [")
	assert.Equal(t, before, f.Snapshot(t, "acme"))
	_, err = os.Stat(archives)
	assert.True(t, os.IsNotExist(err), "no archive directory left behind")

	// Immutable and append-only: refused even when every loss is accepted.
	for _, flag := range []string{"+i", "+a"} {
		p := filepath.Join(data, "preview", "locked"+flag)
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o644))
		chattr(t, flag, p)
		req := request(f, archives, "acme")
		req.AcceptLosses = archive.AcceptableLosses
		_, err = softdelete.Delete(ctx, f.Layout, req)
		require.ErrorAs(t, err, &fe)
		assert.Contains(t, err.Error(), p)
		chattr(t, strings.Replace(flag, "+", "-", 1), p)
		require.NoError(t, os.Remove(p))
	}

	// Accepted: archived without them, named in the manifest and result.
	req := request(f, archives, "acme")
	req.AcceptLosses = []string{archive.LossACL, archive.LossXattr, archive.LossCapability, archive.LossFlags}
	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	assert.Len(t, res.Losses, 4)
	m, err := archive.VerifyArchive(ctx, res.Archive.Path)
	require.NoError(t, err)
	assert.Len(t, m.Losses, 4)
	assert.ElementsMatch(t, req.AcceptLosses, m.AcceptLosses)
}

// TestHoles_SocketsAndFIFOsAllAtOnce is case 17: every socket and named
// pipe is named in one refusal with a clear type word; nothing created is
// left; accept_losses: [special_files] skips them on purpose, recorded.
func TestHoles_SocketsAndFIFOsAllAtOnce(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	data := f.Path("data", "acme")
	fifos := []string{filepath.Join(data, "a.fifo"), filepath.Join(f.Path("config", "acme"), "b.fifo")}
	for _, p := range fifos {
		require.NoError(t, syscall.Mkfifo(p, 0o600))
	}
	sock := filepath.Join(data, "preview", "app.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	before := f.Snapshot(t, "acme")

	_, err = softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	var fe *archive.FindingsError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Findings, 3)
	msg := err.Error()
	for _, p := range fifos {
		assert.Contains(t, msg, p+" is a named pipe (FIFO)")
	}
	assert.Contains(t, msg, sock+" is a socket")
	assert.Contains(t, fe.Hint(), "accept_losses: [special_files]")
	assert.Equal(t, before, f.Snapshot(t, "acme"))
	_, err = os.Stat(archives)
	assert.True(t, os.IsNotExist(err), "no empty archive directory left behind")

	req := request(f, archives, "acme")
	req.AcceptLosses = []string{archive.LossSpecialFiles}
	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	require.Len(t, res.Losses, 3)
	m, err := archive.VerifyArchive(ctx, res.Archive.Path)
	require.NoError(t, err)
	require.Len(t, m.Losses, 3)
	for _, e := range m.Files {
		assert.NotContains(t, e.Path, "fifo")
		assert.NotContains(t, e.Path, ".sock")
	}
}

// TestHoles_ArchiveWithoutTombstoneIsReported is the "words" case: an
// archive left without a tombstone (killed between them, or by an older
// version) is named in the next run's result and recorded.
func TestHoles_ArchiveWithoutTombstoneIsReported(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	req := request(f, archives, "acme")
	req.AfterStep = func(step string) {
		if step == "verify" {
			panic("killed")
		}
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = softdelete.Delete(ctx, f.Layout, req)
	}()
	// As an older version would leave it: no tombstone at all.
	ts, _ := filepath.Glob(filepath.Join(archives, "acme", "*.tombstone.json"))
	require.Len(t, ts, 1)
	require.NoError(t, os.Remove(ts[0]))
	orphan, _ := filepath.Glob(filepath.Join(archives, "acme", "*.tar.zst"))
	require.Len(t, orphan, 1)

	// Check mode names it without touching it.
	check := request(f, archives, "acme")
	check.CheckMode = true
	res, err := softdelete.Delete(ctx, f.Layout, check)
	require.NoError(t, err)
	require.Len(t, res.Warnings, 1)
	assert.Contains(t, res.Warnings[0], orphan[0])

	res, err = softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	require.Len(t, res.Warnings, 1)
	assert.Contains(t, res.Warnings[0], orphan[0])
	assert.Contains(t, res.Warnings[0], "no tombstone")
	// Said once, then on record.
	again, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	assert.Empty(t, again.Warnings)
	all, err := softdelete.Tombstones(filepath.Join(archives, "acme"))
	require.NoError(t, err)
	states := map[string]bool{}
	for _, x := range all {
		states[x.State] = true
	}
	assert.True(t, states[softdelete.StateAbandoned])
	assert.True(t, states[softdelete.StateQuarantined])
}

// TestHoles_NonClientBackendsNamedByType is the other "words" case: a
// backend that is not a client session (here a real walsender, connected
// with replication=database) is named by its type, never as
// "(no application name)… user ."; autovacuum workers, which PostgreSQL
// stops itself for a rename, are not counted at all.
func TestHoles_NonClientBackendsNamedByType(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	pg := f.PG.Resolved()
	cmd := exec.Command("psql", "host="+pg.Host+" dbname="+f.Database("acme")+" replication=database", "-X", "-q", "-f", "-")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	admin, err := f.PG.Open(ctx, "postgres")
	require.NoError(t, err)
	defer admin.Close()
	require.Eventually(t, func() bool {
		var n int
		_ = admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'walsender'`, f.Database("acme")).Scan(&n)
		return n == 1
	}, 2*time.Minute, 20*time.Millisecond, "a walsender on the database (psql starts late on a loaded machine)")
	_, err = softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	var re *softdelete.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, err.Error(), "1 open connection")
	assert.Contains(t, err.Error(), "a walsender (not a client session), user ")
	assert.NotContains(t, err.Error(), "user .")
}

// TestHoles_MoveFailsHalfWay: a move refused after another component went
// into quarantine answers changed, names what moved and what is in place,
// and a re-run finishes.
func TestHoles_MoveFailsHalfWay(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	before := f.Snapshot(t, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	blocker := filepath.Join(filepath.Dir(f.Path("data", "acme")), softdelete.TrashDir)
	req := request(f, archives, "acme")
	req.AfterStep = func(step string) {
		if step == "quarantine:config" {
			// The data component's trash cannot be created.
			require.NoError(t, os.WriteFile(blocker, nil, 0o600))
		}
	}
	res, err := softdelete.Delete(ctx, f.Layout, req)
	var ie *softdelete.IncompleteError
	require.ErrorAs(t, err, &ie)
	require.NotNil(t, res)
	assert.True(t, res.Changed)
	assert.Equal(t, []string{"config"}, ie.Moved)
	assert.Equal(t, []string{"data", "logs", "service"}, ie.InPlace)
	assert.Len(t, res.Quarantined, 1)
	assert.Contains(t, err.Error(), "in quarantine: config; still in place: data, logs, service")

	require.NoError(t, os.Remove(blocker))
	req.AfterStep = nil
	res, err = softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.Len(t, res.Quarantined, 4)
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, before, f.Snapshot(t, "acme"))
}

// TestHoles_ArchiveDirPlacesProperty tries random archive_dir places: any
// path at, under or above any component of any instance name is refused,
// in check mode, before anything is created; a path beside them is not.
func TestHoles_ArchiveDirPlacesProperty(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	names := []string{"acme", "globex", "a", "initech-2", "zz9"}
	comps := []string{"config", "data", "logs"}
	for range 200 {
		name := names[rng.IntN(len(names))]
		comp := f.Path(comps[rng.IntN(len(comps))], name)
		var dir string
		switch rng.IntN(3) {
		case 0: // under
			dir = comp
			for range rng.IntN(3) {
				dir = filepath.Join(dir, fmt.Sprintf("d%d", rng.IntN(9)))
			}
		case 1: // above
			dir = comp
			for range 1 + rng.IntN(3) {
				dir = filepath.Dir(dir)
			}
			if !strings.HasPrefix(dir, f.Root) {
				dir = f.Root
			}
		case 2: // beside: never refused
			dir = filepath.Join(filepath.Dir(f.Root), "beside-"+filepath.Base(f.Root), fmt.Sprintf("a%d", rng.IntN(9)))
		}
		req := request(f, dir, "acme")
		req.CheckMode = true
		_, err := softdelete.Delete(ctx, f.Layout, req)
		beside := strings.Contains(dir, "beside-")
		var re *softdelete.RefusedError
		if beside {
			assert.NoError(t, err, "archive_dir %s", dir)
		} else if assert.ErrorAs(t, err, &re, "archive_dir %s", dir) {
			assert.Contains(t, err.Error(), "archive_dir "+dir)
		}
	}
}

// TestHoles_FullDiskAtEveryWrite runs the deletion with its archive
// directory on a tmpfs of every size from one page up, so that the disk
// fills at each write in turn (journal, archive, sidecar, tombstone,
// final tombstone). Whatever the point: a result that says unchanged
// leaves the instance whole, a result that says changed has a tombstone
// that says where things are, and once there is room a re-run converges
// and a restore gives everything back.
func TestHoles_FullDiskAtEveryWrite(t *testing.T) {
	needRoot(t)
	seen := map[string]bool{}
	for pages := 1; pages <= 6; pages++ {
		t.Run(fmt.Sprint(pages), func(t *testing.T) {
			f := fleettest.New(t, false, "acme")
			ctx := context.Background()
			before := f.Snapshot(t, "acme")
			archives := filepath.Join(t.TempDir(), "archives")
			mount(t, archives, "-t", "tmpfs", "-o", fmt.Sprintf("size=%dk", 4*pages), "tmpfs")
			req := request(f, archives, "acme")
			res, err := softdelete.Delete(ctx, f.Layout, req)
			outcome := "ok"
			if err != nil {
				outcome = "unchanged"
				if res != nil && res.Changed {
					outcome = "changed"
				}
			}
			seen[outcome] = true
			t.Logf("%d pages: %s %v", pages, outcome, err)
			switch outcome {
			case "unchanged":
				assert.Equal(t, before, f.Snapshot(t, "acme"), "unchanged means whole")
			case "changed":
				var ie *softdelete.IncompleteError
				if !errors.As(err, &ie) {
					// Nothing moved: the verified archive stays (and the
					// journal, if it could be written) for the next run.
					assert.Equal(t, before, f.Snapshot(t, "acme"), "nothing moved: whole")
					require.NotNil(t, res.Archive, "changed without a move: an archive is kept")
					_, aerr := os.Stat(res.Archive.Path)
					assert.NoError(t, aerr, "the kept archive is there")
					break
				}
				ts, rerr := softdelete.ReadTombstone(res.Tombstone.Path)
				require.NoError(t, rerr)
				assert.Equal(t, softdelete.StateQuarantining, ts.State)
				for _, m := range ts.Components {
					_, ferr := os.Lstat(m.From)
					_, terr := os.Lstat(m.To)
					assert.True(t, (ferr == nil) != (terr == nil), "%s is in place or in quarantine", m.Component)
				}
			}
			out, merr := exec.Command("mount", "-o", "remount,size=64m", archives).CombinedOutput()
			require.NoError(t, merr, "%s", out)
			_, err = softdelete.Delete(ctx, f.Layout, req)
			require.NoError(t, err)
			_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
			require.NoError(t, err)
			assert.Equal(t, before, f.Snapshot(t, "acme"))
		})
	}
	t.Logf("outcomes: %v", seen)
	assert.True(t, seen["unchanged"] && seen["ok"], "the sizes cover failures before and success after")
}

// TestHoles_LateWriteBeforeAResumedDeletion: a deletion killed after its
// first move, a writer appends to a component still in place, the re-run
// sees it against the archive's manifest and moves everything back
// rather than quarantining lines the archive lacks.
func TestHoles_LateWriteBeforeAResumedDeletion(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	req := request(f, archives, "acme")
	req.AfterStep = func(step string) {
		if step == "quarantine:config" {
			panic("killed")
		}
	}
	func() {
		defer func() { _ = recover() }()
		_, _ = softdelete.Delete(ctx, f.Layout, req)
	}()
	_, err := os.Lstat(f.Path("config", "acme"))
	require.True(t, os.IsNotExist(err), "config went into quarantine before the kill")
	log := filepath.Join(f.Path("data", "acme"), "depot", "a1", "file-001.bin")
	w, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = w.WriteString("late\n")
	require.NoError(t, err)
	require.NoError(t, w.Close())

	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	var le *softdelete.LateChangeError
	require.ErrorAs(t, err, &le)
	assert.True(t, le.MovedBack)
	assert.Contains(t, err.Error(), log)
	require.NotNil(t, res)
	assert.True(t, res.Changed)
	assert.Equal(t, softdelete.StateAbandoned, res.Tombstone.State)
	for _, c := range []string{"config", "data", "logs"} {
		_, err := os.Stat(f.Path(c, "acme"))
		assert.NoError(t, err, "%s is back in place", c)
	}
	assert.Empty(t, archivesOf(t, archives))

	res, err = softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	assert.True(t, res.Archive.Verified)
}

// TestHoles_DatabaseSessionAfterItsDump: a session that opens (and
// writes) after the dump refuses the deletion before anything moves.
func TestHoles_DatabaseSessionAfterItsDump(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	req := request(f, archives, "acme")
	req.AfterStep = func(step string) {
		if step != "verify" {
			return
		}
		db, err := f.PG.Tenant().Open(ctx, f.Database("acme")) // the application's session
		require.NoError(t, err)
		db.SetMaxOpenConns(1)
		_, err = db.Exec(`CREATE TABLE late_rows (v int); INSERT INTO late_rows SELECT generate_series(1, 10)`)
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
	}
	_, err := softdelete.Delete(ctx, f.Layout, req)
	var le *softdelete.LateChangeError
	require.ErrorAs(t, err, &le)
	assert.Contains(t, err.Error(), "session(s) opened after it was dumped")
	assert.Empty(t, archivesOf(t, archives))
	admin, err := f.PG.Open(ctx, "postgres")
	require.NoError(t, err)
	defer admin.Close()
	var n int
	require.NoError(t, admin.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = $1`, f.Database("acme")).Scan(&n))
	assert.Equal(t, 1, n, "the database is in place")
}
