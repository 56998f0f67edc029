package softdelete_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// TestRelocate_OnlyLocatorsMayDiffer attacks relocate: an archive of
// another app is refused with relocate as without it (not one of this
// app's deletions), and nothing is
// written; the same app at other places is refused without relocate and
// restored identical with it.
func TestRelocate_OnlyLocatorsMayDiffer(t *testing.T) {
	ctx := context.Background()
	old := fleettest.New(t, false, "acme")
	before := old.Snapshot(t, "acme")
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "archives"))
	require.NoError(t, err)
	req := request(old, "", "acme")
	req.Store = st
	_, err = softdelete.Delete(ctx, old.Layout, req)
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(old.Root))

	otherApp := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"other"}})
	sameApp := fleettest.NewSpec(t, fleettest.Spec{App: old.App, Names: []string{"other"}})
	restore := func(f *fleettest.Fleet, relocate bool) (*softdelete.RestoreResult, error) {
		return softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", Store: st, Source: "archive",
			Relocate: relocate, Options: f.Options()})
	}
	for _, relocate := range []bool{false, true} {
		_, err := restore(otherApp, relocate)
		require.Error(t, err, "another app's archive, relocate %v", relocate)
		assert.Contains(t, err.Error(), "found in no deletion", "another app's deletions are not this app's")
		_, serr := os.Lstat(otherApp.Path("data", "acme"))
		assert.True(t, os.IsNotExist(serr), "a refused restore wrote data")
	}
	_, err = restore(sameApp, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "locator")
	res, err := restore(sameApp, true)
	require.NoError(t, err)
	assert.NotEmpty(t, res.Relocated)
	assert.Equal(t, before, sameApp.Snapshot(t, "acme"))
}
