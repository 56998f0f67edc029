package instanceinfo

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestInstanceInfo_Quarantined: with archive_dir, the real soft deletions
// of the app are listed with reason, who, archive and purge time, soonest
// purge first; with name, only that instance's; a restored one is gone;
// an unreadable tombstone fails the task naming it while the instances and
// the readable deletions are still returned; check mode reads the same; a
// refused name looks at nothing.
func TestInstanceInfo_Quarantined(t *testing.T) {
	f := fleettest.New(t, true, "acme", "globex", "initech")
	archives := filepath.Join(t.TempDir(), "archives")
	ctx := context.Background()
	later, err := softdelete.Delete(ctx, f.Layout, softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "customer left",
		RequestedBy: "alice", JobID: "42", RetentionDays: 30, Options: f.Options()})
	require.NoError(t, err)
	sooner, err := softdelete.Delete(ctx, f.Layout, softdelete.Request{Name: "globex", ArchiveDir: archives, Reason: "duplicate",
		RequestedBy: "bob", RetentionDays: 0, Options: f.Options()})
	require.NoError(t, err)

	for _, check := range []bool{false, true} {
		out := call(t, f, "archive_dir", archives, "_ansible_check_mode", check)
		require.Equal(t, false, out["failed"], out["msg"])
		assert.Equal(t, false, out["changed"])
		assert.EqualValues(t, 1, out["count"], "initech is the only instance left")
		q := out["quarantined"].([]any)
		require.Len(t, q, 2)
		assert.EqualValues(t, 2, out["quarantined_count"])
		first, second := q[0].(map[string]any), q[1].(map[string]any)
		assert.Equal(t, "globex", first["instance"], "soonest purge first")
		assert.Equal(t, true, first["purge_due"])
		assert.Equal(t, "acme", second["instance"])
		assert.Equal(t, "customer left", second["reason"])
		assert.Equal(t, "alice", second["requested_by"])
		assert.Equal(t, "42", second["job_id"])
		assert.Equal(t, "quarantined", second["state"])
		assert.Equal(t, false, second["purge_due"])
		assert.Equal(t, later.Archive.Path, second["archive_path"])
		assert.Equal(t, later.Tombstone.Path, second["tombstone_path"])
		assert.Equal(t, later.Tombstone.PurgeAfter.Format(time.RFC3339Nano), second["purge_after"])
		assert.NotEmpty(t, second["components"])
	}

	out := call(t, f, "archive_dir", archives, "name", "globex")
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, false, out["found"], "globex is soft-deleted, not present")
	q := out["quarantined"].([]any)
	require.Len(t, q, 1)
	assert.Equal(t, sooner.Tombstone.ID, q[0].(map[string]any)["id"])

	// A refused name: nothing else is looked at, the quarantine neither.
	out = call(t, f, "archive_dir", archives, "name", "acme*")
	assert.Equal(t, true, out["failed"])
	assert.NotContains(t, out, "quarantined")

	// Without archive_dir, no quarantine keys.
	out = call(t, f)
	assert.NotContains(t, out, "quarantined")

	bad := filepath.Join(archives, "initech", "x.tombstone.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(bad), 0o700))
	require.NoError(t, os.WriteFile(bad, []byte("{"), 0o600))
	out = call(t, f, "archive_dir", archives)
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], bad)
	assert.Len(t, out["quarantined"], 2, "the readable deletions are still listed")
	assert.Len(t, out["instances"], 1, "the instances are still listed")
	require.NoError(t, os.Remove(bad))

	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	out = call(t, f, "archive_dir", archives)
	require.Equal(t, false, out["failed"], out["msg"])
	require.Len(t, out["quarantined"], 1, "a restored instance is no longer in quarantine")
}
