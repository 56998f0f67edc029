package softdelete_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// Two apps' instances of one name share archive_dir/<name>/ (the
// playbooks take one archive_dir per host). Each app's soft delete,
// restore and purge act on that app's deletions only: a restore of
// alpha's acme is not refused (nor served) by beta's newer deletion, a
// soft delete of alpha's acme never finishes beta's interrupted one, and
// "already deleted" never answers with the other app's tombstone.
// FINDINGS-1.md break 12, restore and soft delete side.
func TestApps_TwoAppsShareAnInstanceName(t *testing.T) {
	ctx := context.Background()
	alpha := fleettest.New(t, false, "acme")
	beta := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	alphaBefore, betaBefore := alpha.Snapshot(t, "acme"), beta.Snapshot(t, "acme")

	ra, err := softdelete.Delete(ctx, alpha.Layout, request(alpha, archives, "acme"))
	require.NoError(t, err)
	rb, err := softdelete.Delete(ctx, beta.Layout, request(beta, archives, "acme"))
	require.NoError(t, err)
	require.Equal(t, filepath.Dir(ra.Tombstone.Path), filepath.Dir(rb.Tombstone.Path), "both are filed under archive_dir/acme")

	// Already deleted: each app gets its own tombstone back.
	again, err := softdelete.Delete(ctx, alpha.Layout, request(alpha, archives, "acme"))
	require.NoError(t, err)
	require.NotNil(t, again.Tombstone)
	assert.Equal(t, ra.Tombstone.ID, again.Tombstone.ID, "alpha's acme is answered with alpha's deletion, not beta's newer one")

	// Beta's deletion, made to look interrupted (state quarantining, one
	// component back in place): a soft delete of alpha's acme (restored
	// first) must not finish it.
	rr, err := softdelete.Restore(ctx, alpha.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Source: softdelete.SourceAuto, Options: alpha.Options()})
	require.NoError(t, err, "beta's newer deletion does not stand in the way of alpha's restore")
	assert.Equal(t, alphaBefore, alpha.Snapshot(t, "acme"))
	assert.NotEmpty(t, rr.Restored)

	ts, err := softdelete.ReadTombstone(rb.Tombstone.Path)
	require.NoError(t, err)
	ts.State = softdelete.StateQuarantining
	raw, err := json.Marshal(ts)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(rb.Tombstone.Path, raw, 0o600))
	data := beta.Path("data", "acme")
	var dataMove softdelete.QuarantineMove
	for _, m := range rb.Quarantined {
		if m.From == data {
			dataMove = m
		}
	}
	require.NotEmpty(t, dataMove.To)
	require.NoError(t, os.Rename(dataMove.To, data))

	ra2, err := softdelete.Delete(ctx, alpha.Layout, request(alpha, archives, "acme"))
	require.NoError(t, err)
	assert.NotEqual(t, rb.Tombstone.ID, ra2.Tombstone.ID, "alpha's run makes its own deletion")
	assert.DirExists(t, data, "beta's component put back is not moved by alpha's run")
	ts, err = softdelete.ReadTombstone(rb.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StateQuarantining, ts.State, "beta's journal is beta's")

	// Beta's own run finishes it; restore of beta's acme is beta's.
	_, err = softdelete.Delete(ctx, beta.Layout, request(beta, archives, "acme"))
	require.NoError(t, err)
	assert.NoDirExists(t, data)
	_, err = softdelete.Restore(ctx, beta.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Source: softdelete.SourceAuto, Options: beta.Options()})
	require.NoError(t, err)
	assert.Equal(t, betaBefore, beta.Snapshot(t, "acme"))
}
