package softdelete_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestRestore_SettlesRollingBackWhoseArchiveIsGone: a soft delete killed
// while rolling back (its tombstone says rolling_back, its components are
// still in quarantine) whose archive was then removed from the store. A
// restore must not refuse until a soft delete settles it: it finishes
// moving the components back (the quarantine holds the late changes the
// archive missed), marks the deletion abandoned and says what it found.
func TestRestore_SettlesRollingBackWhoseArchiveIsGone(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	before := f.Snapshot(t, "acme")
	waitNoConnections(t, f.PG, f.Database("acme"))
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)

	// Killed right after the tombstone said rolling_back.
	data, err := os.ReadFile(res.Tombstone.Path)
	require.NoError(t, err)
	var ts map[string]any
	require.NoError(t, json.Unmarshal(data, &ts))
	ts["state"] = softdelete.StateRollingBack
	ts["note"] = "late changes: test"
	data, err = json.Marshal(ts)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(res.Tombstone.Path, data, 0o600))
	// Then the archive goes from the store.
	gone, err := filepath.Glob(res.Archive.Path + "*")
	require.NoError(t, err)
	require.NotEmpty(t, gone)
	for _, p := range gone {
		require.NoError(t, os.Remove(p))
	}

	// Check mode says what a restore would do, and changes nothing.
	cr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options(), CheckMode: true})
	require.NoError(t, err)
	assert.True(t, cr.Changed)
	assert.Contains(t, cr.Msg, "would first move its components back")
	st, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StateRollingBack, st.State, "check mode changed nothing")

	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err, "a restore after a killed rollback whose archive is gone")
	assert.True(t, rr.Changed)
	notes := strings.Join(rr.Notes, "; ") + " " + rr.Msg
	assert.Contains(t, notes, "rolling back")
	assert.Contains(t, notes, res.Tombstone.ID)
	assert.Contains(t, notes, "already gone")
	assert.Equal(t, before, f.Snapshot(t, "acme"), "every component back as it was")
	st, err = softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StateAbandoned, st.State)
	for _, q := range res.Quarantined {
		if q.Type != "postgresql" {
			_, err := os.Lstat(filepath.Dir(q.To))
			assert.True(t, os.IsNotExist(err), "the trash entry %s is gone", filepath.Dir(q.To))
		}
	}

	// Settled: a second restore has nothing to do.
	rr, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.False(t, rr.Changed)
}

// TestDelete_SettlesRollingBackWhoseArchiveIsGone: the same state, settled
// by the next soft delete, which says what it found of the archive.
func TestDelete_SettlesRollingBackWhoseArchiveIsGone(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	waitNoConnections(t, f.PG, f.Database("acme"))
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	data, err := os.ReadFile(res.Tombstone.Path)
	require.NoError(t, err)
	var ts map[string]any
	require.NoError(t, json.Unmarshal(data, &ts))
	ts["state"] = softdelete.StateRollingBack
	data, err = json.Marshal(ts)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(res.Tombstone.Path, data, 0o600))
	gone, err := filepath.Glob(res.Archive.Path + "*")
	require.NoError(t, err)
	for _, p := range gone {
		require.NoError(t, os.Remove(p))
	}

	again, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	assert.Contains(t, strings.Join(again.Warnings, "; "), "was already gone")
	st, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StateAbandoned, st.State)
	assert.NotEqual(t, res.Tombstone.ID, again.Tombstone.ID, "a new deletion")
}
