package softdelete_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// needRoot skips tests that mount or chattr when not root.

// bindMount bind-mounts src on dst and unmounts it when the test ends.
func bindMount(t *testing.T, src, dst string) {
	t.Helper()
	out, err := exec.Command("mount", "--bind", src, dst).CombinedOutput()
	require.NoError(t, err, "mount --bind: %s", out)
	t.Cleanup(func() { unmountUnder(t, dst) })
}

// unmountUnder unmounts dst and, should a rename have moved it (a purge
// renames quarantines), every mount left under the test's temporary
// directory, so that no test leaves a mount behind.
func unmountUnder(t *testing.T, dst string) {
	_ = exec.Command("umount", "-l", dst).Run()
	rel, err := filepath.Rel(os.TempDir(), dst)
	if err != nil || !filepath.IsLocal(rel) {
		return
	}
	root := filepath.Join(os.TempDir(), strings.Split(rel, string(filepath.Separator))[0])
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, line := range strings.Split(string(data), "\n") {
		if fields := strings.Fields(line); len(fields) > 4 && strings.HasPrefix(fields[4], root+"/") {
			mps = append(mps, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mps)))
	for _, mp := range mps {
		if err := exec.Command("umount", "-l", mp).Run(); err != nil {
			t.Errorf("unmount %s: %v", mp, err)
		}
	}
}

func tmpfsMount(t *testing.T, dst string) {
	t.Helper()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dst).CombinedOutput()
	require.NoError(t, err, "mount tmpfs: %s", out)
	t.Cleanup(func() { unmountUnder(t, dst) })
}

// chattr sets an attribute (+i, +a) and takes it off when the test ends.
func chattr(t *testing.T, flag, path string) {
	t.Helper()
	out, err := exec.Command("chattr", flag, path).CombinedOutput()
	require.NoError(t, err, "chattr %s %s: %s", flag, path, out)
	off := "-" + flag[1:]
	t.Cleanup(func() { _ = exec.Command("chattr", off, path).Run() })
}

// deleted soft-deletes name and returns the result; the fleet has no
// database unless f.DB.
func deleted(t *testing.T, f *fleettest.Fleet, archives, name string) *softdelete.Result {
	t.Helper()
	res, err := softdelete.Delete(context.Background(), f.Layout, request(f, archives, name))
	require.NoError(t, err)
	return res
}

func quarantineOf(t *testing.T, res *softdelete.Result, component string) string {
	t.Helper()
	for _, m := range res.Quarantined {
		if m.Component == component {
			return m.To
		}
	}
	t.Fatalf("no quarantined component %s", component)
	return ""
}

// treesOf snapshots every quarantined directory of a deletion.
func treesOf(t *testing.T, res *softdelete.Result) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, m := range res.Quarantined {
		if m.Type != "postgresql" {
			out[m.To] = fleettest.Tree(t, m.To)
		}
	}
	return out
}

func purgeAfter(t *testing.T, archives string, f *fleettest.Fleet, res *softdelete.Result, mut func(*softdelete.PurgeRequest)) (*softdelete.PurgeResult, error) {
	t.Helper()
	req := softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 1, PG: f.PG, Now: res.Tombstone.PurgeAfter.Add(time.Hour)}
	if mut != nil {
		mut(&req)
	}
	out, err := softdelete.PurgeReport(context.Background(), req)
	require.NotNil(t, out)
	return out, err
}

// assertNothingPurged checks a refused purge: error, nothing listed as
// purged, changed false, the tombstone still quarantined.
func assertNothingPurged(t *testing.T, out *softdelete.PurgeResult, err error, res *softdelete.Result, mention ...string) {
	t.Helper()
	var inc *softdelete.PurgeIncompleteError
	require.ErrorAs(t, err, &inc)
	assert.Empty(t, out.Purged, "a refused item is never listed as purged")
	assert.False(t, out.Changed)
	require.NotEmpty(t, out.Refused)
	var hinter interface{ Hint() string }
	require.ErrorAs(t, err, &hinter)
	for _, m := range mention {
		assert.Contains(t, err.Error()+" "+hinter.Hint(), m)
	}
	for _, r := range out.Refused {
		assert.NotEmpty(t, r.Left)
		assert.NotEmpty(t, r.Hint)
	}
	ts, rerr := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, rerr)
	assert.Equal(t, softdelete.StateQuarantined, ts.State)
}

// Case 12: a quarantine reached through a symlink, at any level, is
// refused and nothing is removed, neither there nor in the quarantine.
func TestPurge_SymlinkedTrashRefused(t *testing.T) {
	cases := map[string]func(t *testing.T, f *fleettest.Fleet, q string) string{
		"id entry": func(t *testing.T, f *fleettest.Fleet, q string) string {
			entry := filepath.Dir(q)
			require.NoError(t, os.Rename(entry, entry+".real"))
			require.NoError(t, os.Symlink(filepath.Dir(f.Path("data", "globex")), entry))
			return entry
		},
		"trash dir": func(t *testing.T, f *fleettest.Fleet, q string) string {
			trash := filepath.Dir(filepath.Dir(q))
			other := filepath.Join(filepath.Dir(f.Path("data", "globex")), softdelete.TrashDir)
			require.NoError(t, os.MkdirAll(other, 0o700))
			// the other trash holds the other instance under this deletion's id
			require.NoError(t, os.Symlink(f.Path("data", "globex")+"/..", filepath.Join(other, filepath.Base(filepath.Dir(q)))))
			require.NoError(t, os.Rename(trash, trash+".real"))
			require.NoError(t, os.Symlink(other, trash))
			return trash
		},
		"parent": func(t *testing.T, f *fleettest.Fleet, q string) string {
			parent := filepath.Dir(filepath.Dir(filepath.Dir(q)))
			require.NoError(t, os.Rename(parent, parent+".real"))
			require.NoError(t, os.Symlink(parent+".real", parent))
			return parent
		},
	}
	for name, swap := range cases {
		t.Run(name, func(t *testing.T) {
			f := fleettest.New(t, false, "acme", "globex")
			archives := filepath.Join(t.TempDir(), "archives")
			other := f.Snapshot(t, "globex")
			res := deleted(t, f, archives, "acme")
			q := quarantineOf(t, res, "data")
			config := quarantineOf(t, res, "config")
			configTree := fleettest.Tree(t, config)
			link := swap(t, f, q)

			target, err := os.Readlink(link)
			require.NoError(t, err)
			out, err := purgeAfter(t, archives, f, res, nil)
			assertNothingPurged(t, out, err, res, link, "symbolic link", target)
			assert.Equal(t, other, f.Snapshot(t, "globex"), "the other instance is untouched")
			assert.Equal(t, configTree, fleettest.Tree(t, config), "nothing of the deletion is removed while one part is refused")
			_, err = os.Stat(res.Archive.Path)
			assert.NoError(t, err, "the archive of a quarantine that is not purged stays")

			out, err = purgeAfter(t, archives, f, res, func(r *softdelete.PurgeRequest) { r.CheckMode = true })
			assertNothingPurged(t, out, err, res, link)
		})
	}
}

// Case 11: another instance's directory bind-mounted inside a quarantine
// (same device, so st_dev alone does not see it), a file bind-mounted over
// a quarantined file, and another filesystem: purge refuses before
// removing anything and names every mount point.
func TestPurge_MountInsideQuarantineRefused(t *testing.T) {
	needRoot(t)
	f := fleettest.New(t, false, "acme", "globex")
	archives := filepath.Join(t.TempDir(), "archives")
	res := deleted(t, f, archives, "acme")
	q := quarantineOf(t, res, "data")
	dirMount := filepath.Join(q, "depot", "other")
	require.NoError(t, os.Mkdir(dirMount, 0o700))
	fsMount := filepath.Join(quarantineOf(t, res, "config"), "tmp")
	require.NoError(t, os.Mkdir(fsMount, 0o700))
	before := treesOf(t, res)

	bindMount(t, f.Path("data", "globex"), dirMount)
	fileMount := filepath.Join(q, "depot", "a1", "file-001.bin")
	bindMount(t, filepath.Join(f.Path("data", "globex"), "depot", "a1", "file-001.bin"), fileMount)
	tmpfsMount(t, fsMount)
	require.NoError(t, os.WriteFile(filepath.Join(fsMount, "keep"), []byte("x"), 0o600))
	other := f.Snapshot(t, "globex")

	out, err := purgeAfter(t, archives, f, res, nil)
	assertNothingPurged(t, out, err, res, dirMount, fileMount, fsMount, "mount")
	assert.Equal(t, other, f.Snapshot(t, "globex"), "the other instance is untouched")
	_, err = os.Stat(filepath.Join(fsMount, "keep"))
	assert.NoError(t, err)
	for _, m := range []string{fsMount, fileMount, dirMount} {
		require.NoError(t, exec.Command("umount", m).Run())
	}
	after := treesOf(t, res)
	for path, tree := range before {
		assert.Equal(t, tree, after[path], "nothing of %s was removed", path)
	}

	// Unmounted, the purge goes through.
	out, err = purgeAfter(t, archives, f, res, nil)
	require.NoError(t, err)
	assert.True(t, out.Changed)
	assert.Empty(t, out.Refused)
	assert.Equal(t, other, f.Snapshot(t, "globex"))
}

// Case 11, by construction: a bind mount that appears after the checks,
// while the removal runs, is never entered; the run fails, says what is
// left, and a later run finishes once it is gone.
func TestPurge_MountAppearingDuringRemovalNotCrossed(t *testing.T) {
	needRoot(t)
	f := fleettest.New(t, false, "acme", "globex")
	archives := filepath.Join(t.TempDir(), "archives")
	res := deleted(t, f, archives, "acme")
	q := quarantineOf(t, res, "data")
	other := f.Snapshot(t, "globex")
	var mnt string
	out, err := purgeAfter(t, archives, f, res, func(r *softdelete.PurgeRequest) {
		r.AfterStep = func(step string) {
			if step != "rename" {
				return
			}
			entry := filepath.Dir(q) + softdelete.PurgingSuffix
			mnt = filepath.Join(entry, filepath.Base(q), "depot", "zz-other")
			require.NoError(t, os.Mkdir(mnt, 0o700))
			bindMount(t, f.Path("data", "globex"), mnt)
		}
	})
	var inc *softdelete.PurgeIncompleteError
	require.ErrorAs(t, err, &inc)
	assert.Contains(t, err.Error(), mnt)
	assert.True(t, out.Changed, "something was removed")
	for _, p := range out.Purged {
		assert.NotEqual(t, q, p.Path, "the refused component is not listed as purged")
	}
	require.NotEmpty(t, out.Refused)
	assert.Contains(t, out.Refused[0].Left, "purging")
	assert.Equal(t, other, f.Snapshot(t, "globex"), "the other instance is untouched")
	ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StatePurging, ts.State)

	require.NoError(t, exec.Command("umount", mnt).Run())
	out, err = purgeAfter(t, archives, f, res, nil)
	require.NoError(t, err)
	assert.Empty(t, out.Refused)
	ts, err = softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StatePurged, ts.State)
	_, err = os.Lstat(filepath.Dir(q) + softdelete.PurgingSuffix)
	assert.True(t, errors.Is(err, os.ErrNotExist))
	assert.Equal(t, other, f.Snapshot(t, "globex"))
}

// Case 14: keep_last 0 with a name never removes an archive (nor a
// quarantine) whose retention has not passed.
func TestPurge_RetentionBeatsKeepLast(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res := deleted(t, f, archives, "acme")
	quarantined := treesOf(t, res)
	for _, check := range []bool{true, false} {
		out, err := softdelete.PurgeReport(context.Background(), softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 0, CheckMode: check})
		require.NoError(t, err)
		assert.Empty(t, out.Purged, "check mode %v", check)
		assert.False(t, out.Changed)
		var held bool
		for _, k := range out.Kept {
			if k.Path == res.Archive.Path {
				held = true
				require.NotNil(t, k.Until)
				assert.True(t, k.Until.Equal(res.Tombstone.PurgeAfter), "kept until purge_after")
				assert.Contains(t, k.Reason, "retention")
			}
		}
		assert.True(t, held, "the archive is listed as kept: %+v", out.Kept)
	}
	_, err := os.Stat(res.Archive.Path)
	require.NoError(t, err, "the verified archive stays")
	assert.Equal(t, quarantined, treesOf(t, res), "the quarantine stays")

	// Past retention, keep_last 0 removes the quarantine, then the archive.
	out, err := purgeAfter(t, archives, f, res, func(r *softdelete.PurgeRequest) { r.Name, r.KeepLast = "acme", 0 })
	require.NoError(t, err)
	assert.Len(t, out.Purged, 5, "3 quarantined directories, the unit link and the archive")
	_, err = os.Stat(res.Archive.Path)
	assert.True(t, errors.Is(err, os.ErrNotExist))
}

// Case 16: an immutable file is found before anything is removed: the
// quarantine stays whole and restorable.
func TestPurge_ImmutableFileRefusedBeforeRemoval(t *testing.T) {
	needRoot(t)
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	before := f.Snapshot(t, "acme")
	res := deleted(t, f, archives, "acme")
	q := quarantineOf(t, res, "data")
	frozen := filepath.Join(q, "depot", "a1", "file-003.bin")
	chattr(t, "+i", frozen)
	appendOnly := filepath.Join(quarantineOf(t, res, "config"), "development.ini")
	chattr(t, "+a", appendOnly)
	trees := treesOf(t, res)

	out, err := purgeAfter(t, archives, f, res, nil)
	assertNothingPurged(t, out, err, res, frozen, appendOnly, "chattr")
	assert.Equal(t, trees, treesOf(t, res), "nothing was removed")

	// The quarantine is whole: a restore takes it.
	require.NoError(t, exec.Command("chattr", "-i", frozen).Run())
	require.NoError(t, exec.Command("chattr", "-a", appendOnly).Run())
	rr, err := softdelete.Restore(context.Background(), f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, softdelete.SourceQuarantine, rr.Source)
	assert.Equal(t, before, f.Snapshot(t, "acme"))
}

// Case 16, a removal that fails midway: the tombstone says purging
// before the first removal and the tree has its purging name, so a
// restore never takes the half-purged quarantine; a later run finishes.
func TestPurge_FailingMidwayIsNeverAnIntactQuarantine(t *testing.T) {
	needRoot(t)
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	before := f.Snapshot(t, "acme")
	res := deleted(t, f, archives, "acme")
	q := quarantineOf(t, res, "data")
	purging := filepath.Join(filepath.Dir(q)+softdelete.PurgingSuffix, filepath.Base(q))
	frozen := filepath.Join(purging, "depot", "a1", "file-004.bin")
	out, err := purgeAfter(t, archives, f, res, func(r *softdelete.PurgeRequest) {
		r.AfterStep = func(step string) {
			if step == "rename" {
				chattr(t, "+i", frozen)
			}
		}
	})
	var inc *softdelete.PurgeIncompleteError
	require.ErrorAs(t, err, &inc)
	assert.True(t, out.Changed)
	require.Len(t, out.Refused, 1)
	assert.Equal(t, q, out.Refused[0].Path)
	assert.Contains(t, out.Refused[0].Left, filepath.Dir(purging))
	assert.Contains(t, out.Refused[0].Hint, "run instance_purge again")
	for _, p := range out.Purged {
		assert.NotEqual(t, q, p.Path, "a refused item is never listed as purged")
	}
	ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StatePurging, ts.State)
	_, err = os.Lstat(q)
	assert.True(t, errors.Is(err, os.ErrNotExist), "no half-purged tree under the quarantine name")
	_, err = os.Stat(res.Archive.Path)
	assert.NoError(t, err, "the archive of a quarantine being purged stays")

	// Restore takes the archive, not the half-purged quarantine.
	rr, err := softdelete.Restore(context.Background(), f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, softdelete.SourceArchive, rr.Source)
	assert.Equal(t, before, f.Snapshot(t, "acme"))

	require.NoError(t, exec.Command("chattr", "-i", frozen).Run())
	out, err = purgeAfter(t, archives, f, res, nil)
	require.NoError(t, err)
	assert.Empty(t, out.Refused)
	ts, err = softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StatePurged, ts.State)
	_, err = os.Lstat(purging)
	assert.True(t, errors.Is(err, os.ErrNotExist))
	assert.Equal(t, before, f.Snapshot(t, "acme"), "the restored instance is untouched by the purge")
}

// The archive directory of one instance being a link to another's, or a
// tombstone of another instance: refused, nothing removed.
func TestPurge_ArchivesOfTheWrongInstanceRefused(t *testing.T) {
	f := fleettest.New(t, false, "acme", "globex")
	archives := filepath.Join(t.TempDir(), "archives")
	res := deleted(t, f, archives, "globex")
	later := res.Tombstone.PurgeAfter.Add(time.Hour)
	// acme's archive directory is a link to globex's.
	require.NoError(t, os.Symlink(filepath.Join(archives, "globex"), filepath.Join(archives, "acme")))
	trees := treesOf(t, res)
	out, err := softdelete.PurgeReport(context.Background(), softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 0, Now: later})
	var inc *softdelete.PurgeIncompleteError
	require.ErrorAs(t, err, &inc)
	assert.Empty(t, out.Purged)
	assert.False(t, out.Changed)
	assert.Equal(t, trees, treesOf(t, res))
	_, err = os.Stat(res.Archive.Path)
	assert.NoError(t, err)

	// A tombstone of globex copied under acme's real directory.
	require.NoError(t, os.Remove(filepath.Join(archives, "acme")))
	require.NoError(t, os.Mkdir(filepath.Join(archives, "acme"), 0o700))
	data, err := os.ReadFile(res.Tombstone.Path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(archives, "acme", filepath.Base(res.Tombstone.Path)), data, 0o600))
	out, err = softdelete.PurgeReport(context.Background(), softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 1, Now: later})
	require.ErrorAs(t, err, &inc)
	assert.Contains(t, err.Error(), `tombstone of instance "globex"`)
	assert.Empty(t, out.Purged)
	assert.Equal(t, trees, treesOf(t, res))
}

// A full disk where tombstones live: the journal cannot be written, so
// nothing is renamed or removed and the quarantine stays intact.
func TestPurge_JournalOnAFullDiskRemovesNothing(t *testing.T) {
	needRoot(t)
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	require.NoError(t, os.Mkdir(archives, 0o700))
	tmpfsMount(t, archives)
	res := deleted(t, f, archives, "acme")
	trees := treesOf(t, res)
	filler, err := os.Create(filepath.Join(archives, "filler"))
	require.NoError(t, err)
	buf := make([]byte, 64*1024)
	for {
		if _, err := filler.Write(buf); err != nil {
			break
		}
	}
	for i := 0; ; i++ { // the last inodes and blocks
		if os.WriteFile(filepath.Join(archives, fmt.Sprintf("f%d", i)), []byte("x"), 0o600) != nil {
			break
		}
	}
	require.NoError(t, filler.Close())

	out, err := purgeAfter(t, archives, f, res, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nothing was removed")
	assert.Empty(t, out.Purged)
	assert.False(t, out.Changed)
	assert.Equal(t, trees, treesOf(t, res))
	ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StateQuarantined, ts.State)
}

// Property: whatever keep_last, the clock and the tombstones say, purge
// never removes an archive within its retention, among the newest
// keep_last deletions' archives, or whose quarantine is still there;
// everything else old enough goes (an archive without a tombstone is a
// spare copy keep_last does not count); every archive is listed exactly once, as purged or kept.
func TestPurge_RetentionPropertyOverRandomArchives(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 3))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	states := []string{softdelete.StateRestored, softdelete.StatePurged, softdelete.StateQuarantining}
	for iter := range 200 {
		archives := t.TempDir()
		dir := filepath.Join(archives, "acme")
		require.NoError(t, os.Mkdir(dir, 0o700))
		n := rng.IntN(6)
		type arch struct {
			path       string
			ts         *softdelete.Tombstone
			purgeAfter time.Time
		}
		var all []arch
		for i := range n {
			deleted := base.Add(time.Duration(i) * 24 * time.Hour)
			id := fmt.Sprintf("%s-%08x", deleted.Format("20060102T150405Z"), i)
			a := arch{path: filepath.Join(dir, id+".tar.zst")}
			purgeAfter := deleted.Add(time.Duration(rng.IntN(20)) * 24 * time.Hour)
			if rng.IntN(5) > 0 { // most archives have a tombstone
				ts := softdelete.Tombstone{ID: id, Instance: "acme", ArchivePath: a.path, DeletedAt: deleted,
					PurgeAfter: purgeAfter, State: states[rng.IntN(len(states))]}
				data, err := json.Marshal(ts)
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(filepath.Join(dir, id+".tombstone.json"), data, 0o600))
				a.ts = &ts
				softdelete.BareArchive(t, a.path, id, "acme", "", deleted, &purgeAfter)
			} else {
				// Without a tombstone, an archive of an earlier release
				// (its manifest records no retention) is a spare copy
				// that goes at once.
				softdelete.BareArchive(t, a.path, id, "acme", "", deleted, nil)
			}
			all = append(all, a)
		}
		keep := rng.IntN(4)
		now := base.Add(time.Duration(rng.IntN(30*24)) * time.Hour)
		check := rng.IntN(2) == 0
		out, err := softdelete.PurgeReport(context.Background(), softdelete.PurgeRequest{ArchiveDir: archives, Name: "acme",
			KeepLast: keep, Now: now, CheckMode: check})
		require.NoError(t, err, "seed %d iter %d", seed, iter)
		listed := map[string]string{}
		for _, p := range out.Purged {
			listed[p.Path] += "purged"
		}
		for _, k := range out.Kept {
			listed[k.Path] += "kept"
		}
		deletions := 0
		for _, a := range all {
			if a.ts != nil {
				deletions++
			}
		}
		seen := 0
		for i, a := range all {
			// keep_last counts deletions' archives; one without a
			// tombstone is a spare copy with no retention recorded.
			mayGo := a.ts == nil
			if a.ts != nil {
				seen++
				mayGo = seen <= deletions-keep && !now.Before(a.ts.PurgeAfter) && a.ts.State != softdelete.StateQuarantining
			}
			want := "kept"
			if mayGo {
				want = "purged"
			}
			assert.Equal(t, want, listed[a.path], "seed %d iter %d archive %d keep_last %d", seed, iter, i, keep)
			_, err := os.Stat(a.path)
			assert.Equal(t, mayGo && !check, os.IsNotExist(err), "seed %d iter %d archive %d on disk", seed, iter, i)
		}
		assert.Equal(t, !check && len(out.Purged) > 0, out.Changed)
	}
}
