package recovery_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestInventory_ListsPartialAndGoneWithTheirBackups: of four instances
// with backups, one is whole, one lost its data, one is gone entirely
// (its database too), one was soft-deleted on purpose; the inventory
// lists the partial one and the gone one with what is missing and the
// newest good backup of each (falling back past a broken one), and
// changes nothing.
func TestInventory_ListsPartialAndGoneWithTheirBackups(t *testing.T) {
	ctx := context.Background()
	f := fleettest.NewSpec(t, fleettest.Spec{DB: true, Backups: true, Files: 3})
	for _, n := range []string{"acme", "globex", "initech", "umbrella"} {
		require.NoError(t, f.AddInstance(ctx, n))
	}
	latest := map[string]map[string]string{}
	prev := map[string]map[string]string{}
	for _, n := range []string{"acme", "globex", "initech", "umbrella"} {
		p, err := f.WriteBackups(ctx, n, time.Now().Add(-25*time.Hour))
		require.NoError(t, err)
		prev[n] = p
		l, err := f.WriteBackups(ctx, n, time.Now().Add(-time.Hour))
		require.NoError(t, err)
		latest[n] = l
	}
	archives := filepath.Join(t.TempDir(), "archives")
	_, err := softdelete.Delete(ctx, f.Layout, softdelete.Request{Name: "umbrella", ArchiveDir: archives, Reason: "customer left", Options: f.Options()})
	require.NoError(t, err)
	// globex: data gone. initech: everything gone, its newest data backup broken.
	require.NoError(t, os.RemoveAll(f.Path("data", "globex")))
	for _, c := range []string{"config", "data", "logs"} {
		require.NoError(t, os.RemoveAll(f.Path(c, "initech")))
	}
	require.NoError(t, os.Remove(filepath.Join(f.SystemdDir, "multi-user.target.wants", f.App+"@initech.service")))
	require.NoError(t, fleettest.DropDatabasesLike(ctx, f.PG, f.Database("initech")))
	require.NoError(t, os.WriteFile(latest["initech"]["data"], []byte("broken"), 0o600))

	rep, err := recovery.Inventory(ctx, f.Layout, recovery.DamageOptions{ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	require.Len(t, rep.Damaged, 2, "%+v", rep.Damaged)
	assert.Equal(t, []string{"umbrella"}, rep.SoftDeleted, "soft-deleted on purpose: no damage")
	g, i := rep.Damaged[0], rep.Damaged[1]
	assert.Equal(t, "globex", g.Name)
	assert.Equal(t, recovery.DamagePartial, g.Status)
	assert.Equal(t, []string{"data"}, g.Missing)
	assert.True(t, g.Restorable)
	assert.Equal(t, "initech", i.Name)
	assert.Equal(t, recovery.DamageGone, i.Status)
	assert.ElementsMatch(t, []string{"config", "data", "logs", "service", "database"}, i.Missing)
	assert.True(t, i.Restorable, "logs (optional) and service (backup: false) are reported as not restorable, which is no failure")
	assert.Equal(t, recovery.StatusNotRestorable, byComponent(&recovery.Result{Components: i.Components})["service"].Status)
	cs := byComponent(&recovery.Result{Components: i.Components})
	assert.Equal(t, prev["initech"]["data"], cs["data"].Backup.Path, "falls back past the broken newest")
	require.Len(t, cs["data"].Refused, 1)
	assert.Equal(t, latest["initech"]["database"], cs["database"].Backup.Path)
	require.NotNil(t, i.RecoveryPoint)
	_, err = os.Lstat(f.Path("data", "globex"))
	assert.ErrorIs(t, err, os.ErrNotExist, "the inventory changes nothing")
}

// TestInventory_RestoredFromTheArchiveIsNoLongerSoftDeleted: an instance
// soft-deleted, then restored from its archive while its quarantine is
// still held (the tombstone stays "quarantined" until purge removes the
// leftovers), then destroyed, is damage to recover, not a deletion on
// purpose.
func TestInventory_RestoredFromTheArchiveIsNoLongerSoftDeleted(t *testing.T) {
	ctx := context.Background()
	f := fleettest.NewSpec(t, fleettest.Spec{DB: true, Backups: true, Files: 3})
	require.NoError(t, f.AddInstance(ctx, "acme"))
	_, err := f.WriteBackups(ctx, "acme", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	archives := filepath.Join(t.TempDir(), "archives")
	_, err = softdelete.Delete(ctx, f.Layout, softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "by mistake", Options: f.Options()})
	require.NoError(t, err)
	r, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Source: "archive", Options: f.Options()})
	require.NoError(t, err)
	require.NotEmpty(t, r.Restored)
	tombs, err := softdelete.Tombstones(filepath.Join(archives, "acme"))
	require.NoError(t, err)
	require.Len(t, tombs, 1)
	require.NotNil(t, tombs[0].RestoredAt, "the tombstone records the restore (state %s)", tombs[0].State)

	require.NoError(t, os.RemoveAll(f.Path("data", "acme")))
	rep, err := recovery.Inventory(ctx, f.Layout, recovery.DamageOptions{ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Empty(t, rep.SoftDeleted, "restored from its archive: no longer a deletion on purpose")
	require.Len(t, rep.Damaged, 1, "%+v", rep.Damaged)
	assert.Equal(t, "acme", rep.Damaged[0].Name)
	assert.Contains(t, rep.Damaged[0].Missing, "data")
}
