package softdelete_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

var allStates = []string{softdelete.StateArchiving, softdelete.StateQuarantining, softdelete.StateQuarantined, softdelete.StateRollingBack,
	softdelete.StateAbandoned, softdelete.StateRestored, softdelete.StatePurging, softdelete.StatePurged}

func putTombstone(t *testing.T, dir string, ts softdelete.Tombstone) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ts.Instance), 0o700))
	p := filepath.Join(dir, ts.Instance, ts.ID+".tombstone.json")
	b, err := json.Marshal(ts)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

// TestListQuarantine_Property: for any set of tombstones of several apps
// in every state, the listing is exactly the deletions of the app with
// something in quarantine (quarantining, quarantined, rolling_back,
// purging), each once, sorted by purge time, due exactly when purge_after
// is not after now.
func TestListQuarantine_Property(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	rapid.Check(t, func(rt *rapid.T) {
		dir := filepath.Join(t.TempDir(), "archives")
		n := rapid.IntRange(0, 12).Draw(rt, "n")
		want := map[string]softdelete.Tombstone{}
		for i := 0; i < n; i++ {
			ts := softdelete.Tombstone{
				ID:         fmt.Sprintf("20260101T0000%02dZ-%d", i, i),
				Instance:   rapid.SampledFrom([]string{"acme", "globex", "initech"}).Draw(rt, "name"),
				App:        rapid.SampledFrom([]string{"tracim", "other"}).Draw(rt, "app"),
				State:      rapid.SampledFrom(allStates).Draw(rt, "state"),
				PurgeAfter: now.Add(time.Duration(rapid.IntRange(-3, 3).Draw(rt, "hours")) * time.Hour),
				Reason:     "r", RequestedBy: "who",
			}
			putTombstone(t, dir, ts)
			switch ts.State {
			case softdelete.StateQuarantining, softdelete.StateQuarantined, softdelete.StateRollingBack, softdelete.StatePurging:
				if ts.App == "tracim" {
					want[ts.ID] = ts
				}
			}
		}
		got, err := softdelete.ListQuarantine(dir, "tracim", now)
		require.NoError(rt, err)
		require.Len(rt, got, len(want))
		require.True(rt, sort.SliceIsSorted(got, func(i, j int) bool { return got[i].PurgeAfter.Before(got[j].PurgeAfter) }))
		for _, q := range got {
			w, ok := want[q.ID]
			require.True(rt, ok, q.ID)
			require.Equal(rt, w.Instance, q.Instance)
			require.Equal(rt, w.State, q.State)
			require.Equal(rt, !now.Before(w.PurgeAfter), q.PurgeDue)
			require.Equal(rt, "who", q.RequestedBy)
			require.Equal(rt, filepath.Join(dir, w.Instance, w.ID+".tombstone.json"), q.TombstonePath)
		}
		all, err := softdelete.ListQuarantine(dir, "", now)
		require.NoError(rt, err)
		require.GreaterOrEqual(rt, len(all), len(got), "every app when app is empty")
	})
}

// TestListQuarantine_LoudButLosesNothing: a tombstone that does not
// parse, one filed under another instance's directory and an entry that
// is a link are each an error naming it; the readable deletions are still
// listed. A missing archive_dir holds nothing; a relative one is refused.
func TestListQuarantine_LoudButLosesNothing(t *testing.T) {
	now := time.Now().UTC()
	dir := filepath.Join(t.TempDir(), "archives")
	good := putTombstone(t, dir, softdelete.Tombstone{ID: "a1", Instance: "acme", App: "tracim", State: softdelete.StateQuarantined, PurgeAfter: now})
	bad := filepath.Join(dir, "acme", "b2.tombstone.json")
	require.NoError(t, os.WriteFile(bad, []byte("{not json"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "globex"), 0o700))
	moved := filepath.Join(dir, "globex", "c3.tombstone.json")
	b, _ := json.Marshal(softdelete.Tombstone{ID: "c3", Instance: "initech", App: "tracim", State: softdelete.StateQuarantined})
	require.NoError(t, os.WriteFile(moved, b, 0o600))
	link := filepath.Join(dir, "hooli")
	require.NoError(t, os.Symlink("/etc", link))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o600))

	got, err := softdelete.ListQuarantine(dir, "tracim", now)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad)
	assert.Contains(t, err.Error(), moved)
	assert.Contains(t, err.Error(), link)
	assert.NotContains(t, err.Error(), "README")
	require.Len(t, got, 1)
	assert.Equal(t, good, got[0].TombstonePath)
	assert.True(t, got[0].PurgeDue)

	got, err = softdelete.ListQuarantine(filepath.Join(dir, "missing"), "tracim", now)
	require.NoError(t, err)
	assert.Empty(t, got)
	_, err = softdelete.ListQuarantine("archives", "tracim", now)
	assert.ErrorContains(t, err, `"archives" is not an absolute path`)
}
