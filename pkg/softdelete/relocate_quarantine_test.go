package softdelete_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// movedLayout is f's layout after a layout change on the same host: the
// data component under srv2/ instead of srv/, and (with a database) the
// database under another prefix. It returns a fleet that sees the
// instances through that layout.
func movedLayout(t *testing.T, f *fleettest.Fleet) *fleettest.Fleet {
	t.Helper()
	data, err := os.ReadFile(f.LayoutFile)
	require.NoError(t, err)
	text := strings.Replace(string(data), "/srv/"+f.App+"/", "/srv2/"+f.App+"/", 1)
	prefix := f.DBPrefix
	if f.DB {
		prefix = f.App + "_moved_"
		text = strings.Replace(text, "database: "+f.DBPrefix+"{name}", "database: "+prefix+"{name}", 1)
	}
	file := filepath.Join(f.Root, "layout-moved.yml")
	require.NoError(t, os.WriteFile(file, []byte(text), 0o644))
	l, err := instance.LoadLayoutFile(file)
	require.NoError(t, err)
	g := *f.Fleet
	g.Layout, g.LayoutFile, g.DBPrefix = l, file, prefix
	return &fleettest.Fleet{Fleet: &g}
}

// TestRelocate_FromQuarantineAfterLayoutChange: the layout moved the data
// directory and the database of an instance that is in quarantine.
// Without relocate the restore is refused and says to use relocate; with
// relocate and source: quarantine it is refused (a quarantined copy is
// never renamed to a new place); with relocate the instance comes back
// byte-identical at the new places from the verified archive, the result
// and the tombstone record from where to where, and the quarantined
// copies are left for purge.
func TestRelocate_FromQuarantineAfterLayoutChange(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, true, "acme", "globex")
	before := f.Snapshot(t, "acme")
	other := f.Snapshot(t, "globex")
	archives := filepath.Join(t.TempDir(), "archives")
	del, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	qData := quarantineOf(t, del, "data")
	moved := movedLayout(t, f)
	newData := moved.Path("data", "acme")

	restore := func(relocate bool, source string) (*softdelete.RestoreResult, error) {
		return softdelete.Restore(ctx, moved.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
			Source: source, Relocate: relocate, Options: moved.Options()})
	}
	untouched := func(what string) {
		t.Helper()
		_, err := os.Lstat(newData)
		assert.True(t, os.IsNotExist(err), "%s: the new data place was written", what)
		_, err = os.Lstat(f.Path("config", "acme"))
		assert.True(t, os.IsNotExist(err), "%s: config was renamed back", what)
		_, err = os.Lstat(qData)
		assert.NoError(t, err, "%s: the quarantined data moved", what)
	}

	_, err = restore(false, "auto")
	var re *softdelete.RestoreRefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, err.Error(), "this host's layout says")
	assert.Contains(t, re.Hint(), "relocate: true")
	untouched("without relocate")

	_, err = restore(true, "quarantine")
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Hint(), "source: archive")
	untouched("relocate with source: quarantine")

	// The new database name is taken by an empty database (not the
	// archived content): refused, nothing moved, the database kept.
	require.NoError(t, moved.CreateDatabaseEmpty(ctx, "acme"))
	_, err = restore(true, "auto")
	require.ErrorAs(t, err, &re)
	assert.Contains(t, err.Error(), "not its archived content")
	untouched("the new database name is taken")
	require.NoError(t, fleettest.DropDatabasesLike(ctx, f.PG, moved.Database("acme")))

	res, err := restore(true, "auto")
	require.NoError(t, err)
	assert.True(t, res.Changed)
	got := map[string]softdelete.Relocation{}
	for _, r := range res.Relocated {
		got[r.Component] = r
	}
	require.Contains(t, got, "data")
	assert.Equal(t, f.Path("data", "acme"), got["data"].From)
	assert.Equal(t, newData, got["data"].To)
	require.Contains(t, got, "database")
	assert.Equal(t, f.Database("acme"), got["database"].From)
	assert.Equal(t, moved.Database("acme"), got["database"].To)
	assert.Contains(t, strings.Join(res.Notes, "\n"), "purge removes it")
	assert.Equal(t, before, moved.Snapshot(t, "acme"), "relocated instance differs from what was deleted")
	assert.Equal(t, other, f.Snapshot(t, "globex"), "another instance changed")
	_, err = os.Lstat(qData)
	assert.NoError(t, err, "the quarantined copy is kept for purge")

	tombs, err := softdelete.Tombstones(filepath.Join(archives, "acme"))
	require.NoError(t, err)
	var recorded []softdelete.Relocation
	for _, ts := range tombs {
		recorded = append(recorded, ts.Relocated...)
	}
	assert.Len(t, recorded, 2, "the tombstone records both relocations")

	// Converged: a second run changes nothing.
	res, err = restore(true, "auto")
	require.NoError(t, err)
	assert.False(t, res.Changed)
}

// TestRelocate_FromQuarantineTargetTaken attacks relocate from a
// quarantine: the new place already holds something (a stranger's
// directory, a link to another instance's data): refused, with and
// without force for the link, and nothing is touched: the obstacle,
// the other instance, the quarantine and the other components stay as
// they are. Once the obstacle is gone, the same restore succeeds.
func TestRelocate_FromQuarantineTargetTaken(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, false, "acme", "globex")
	before := f.Snapshot(t, "acme")
	other := f.Snapshot(t, "globex")
	archives := filepath.Join(t.TempDir(), "archives")
	del, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	qData, qConfig := quarantineOf(t, del, "data"), quarantineOf(t, del, "config")
	moved := movedLayout(t, f)
	newData := moved.Path("data", "acme")
	require.NoError(t, os.MkdirAll(filepath.Dir(newData), 0o755))

	restore := func(force bool) error {
		_, err := softdelete.Restore(ctx, moved.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
			Relocate: true, Force: force, Options: moved.Options()})
		return err
	}
	untouched := func(what string) {
		t.Helper()
		for _, q := range []string{qData, qConfig} {
			_, err := os.Lstat(q)
			assert.NoError(t, err, "%s: quarantined %s moved", what, q)
		}
		_, err := os.Lstat(f.Path("config", "acme"))
		assert.True(t, os.IsNotExist(err), "%s: config was renamed back", what)
		assert.Equal(t, other, f.Snapshot(t, "globex"), "%s: another instance changed", what)
	}

	// A directory that is not acme's is already at the new place.
	require.NoError(t, os.Mkdir(newData, 0o700))
	stranger := filepath.Join(newData, "stranger.txt")
	require.NoError(t, os.WriteFile(stranger, []byte("not acme"), 0o600))
	err = restore(false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not its archived content")
	b, rerr := os.ReadFile(stranger)
	require.NoError(t, rerr)
	assert.Equal(t, "not acme", string(b))
	untouched("target exists")
	require.NoError(t, os.RemoveAll(newData))

	// The new place is a link to another instance's data.
	require.NoError(t, os.Symlink(f.Path("data", "globex"), newData))
	for _, force := range []bool{false, true} {
		err = restore(force)
		require.Error(t, err, "force %v", force)
		target, lerr := os.Readlink(newData)
		require.NoError(t, lerr, "force %v: the link was moved", force)
		assert.Equal(t, f.Path("data", "globex"), target)
		untouched("target links to another instance")
	}
	require.NoError(t, os.Remove(newData))

	res, err := softdelete.Restore(ctx, moved.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Relocate: true, Options: moved.Options()})
	require.NoError(t, err)
	assert.Equal(t, "quarantine:"+del.Tombstone.ID, res.Sources["config"], "config did not move: renamed back from quarantine")
	assert.True(t, strings.HasPrefix(res.Sources["data"], "archive:"), "data: %s", res.Sources["data"])
	assert.Equal(t, before, moved.Snapshot(t, "acme"))
}

// TestRelocate_InterruptedConverges: a relocating restore dies right
// after the data directory is in its new place, before the database is:
// the re-run finds the data at its new place with exactly the archived
// content (an earlier relocation), leaves it, restores the rest, and the
// instance is identical to what was deleted.
func TestRelocate_InterruptedConverges(t *testing.T) {
	// Killed after the first relocated component was placed, and after the
	// last one (everything in place, nothing recorded yet): the re-run
	// finishes and the tombstone records both relocations.
	for _, step := range []string{"place:data", "place:database"} {
		t.Run(step, func(t *testing.T) { relocateInterrupted(t, step) })
	}
}

func relocateInterrupted(t *testing.T, step string) {
	ctx := context.Background()
	f := fleettest.New(t, true, "acme")
	before := f.Snapshot(t, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	moved := movedLayout(t, f)
	req := softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Relocate: true, Options: moved.Options()}
	crash := "crash after " + step
	req.AfterStep = func(s string) {
		if s == step {
			panic(crash)
		}
	}
	func() {
		defer func() { assert.Equal(t, crash, recover()) }()
		_, _ = softdelete.Restore(ctx, moved.Layout, req)
	}()
	_, err = os.Lstat(moved.Path("data", "acme"))
	require.NoError(t, err, "the data directory was placed before the crash")

	req.AfterStep = nil
	res, err := softdelete.Restore(ctx, moved.Layout, req)
	require.NoError(t, err)
	assert.Contains(t, strings.Join(res.Notes, "\n"), "already at its new place")
	if step == "place:data" {
		assert.Contains(t, res.Restored, "database")
	}
	assert.True(t, res.Changed, "the re-run wrote the missing record")
	assert.Len(t, res.Relocated, 2, "both relocations reported: %+v", res.Relocated)
	assert.Equal(t, before, moved.Snapshot(t, "acme"))
	tombs, err := softdelete.Tombstones(filepath.Join(archives, "acme"))
	require.NoError(t, err)
	recorded := map[string]bool{}
	for _, ts := range tombs {
		for _, r := range ts.Relocated {
			recorded[r.Component] = true
		}
	}
	assert.Equal(t, map[string]bool{"data": true, "database": true}, recorded, "the tombstone records both relocations, the interrupted one too")

	// Once recorded, a further run records nothing twice and changes nothing.
	res, err = softdelete.Restore(ctx, moved.Layout, req)
	require.NoError(t, err)
	assert.False(t, res.Changed, "nothing left to do: %+v", res)
	assert.Empty(t, res.Relocated)
	tombs, err = softdelete.Tombstones(filepath.Join(archives, "acme"))
	require.NoError(t, err)
	n := 0
	for _, ts := range tombs {
		n += len(ts.Relocated)
	}
	assert.Equal(t, 2, n, "each relocation recorded once")
}
