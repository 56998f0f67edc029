package kinds_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestPurgeTrust_KindWithoutRetentionRecord: a kind that keeps no
// retention record of its own (testDB: neither a trash entry nor a
// kind.RetentionKeeper) is the only component of an app. Its deletion
// kept 30 days; its tombstone edited as root (purge_after and deleted_at
// in the past, retention_days 0, state purging too): purge refuses to
// drop its quarantine, naming the archive's retention; once that is over
// by the clock, it goes.
func TestPurgeTrust_KindWithoutRetentionRecord(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dbs := filepath.Join(root, "dbs")
	require.NoError(t, os.MkdirAll(dbs, 0o700))
	l, err := instance.ParseLayout([]byte(fmt.Sprintf("app: bare\ncomponents:\n"+
		"  - name: db\n    type: fstestdb\n    database: bare_{name}\n")), "bare.yml")
	require.NoError(t, err)
	opts := instance.Options{SkipSizes: true, SystemdDir: filepath.Join(root, "systemd"), Settings: map[string]any{testDBType: dbs}}
	require.NoError(t, os.WriteFile(filepath.Join(dbs, "bare_acme.db"), []byte("rows of acme"), 0o600))
	archives := filepath.Join(root, "archives")
	res, err := softdelete.Delete(ctx, l, softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "test", RetentionDays: 30, Options: opts})
	require.NoError(t, err)
	require.Len(t, res.Quarantined, 1)
	quarantined := filepath.Join(dbs, res.Quarantined[0].To+".db")
	require.FileExists(t, quarantined)

	for _, state := range []string{softdelete.StateQuarantined, softdelete.StatePurging} {
		data, err := os.ReadFile(res.Tombstone.Path)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m))
		m["state"] = state
		m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
		m["deleted_at"] = time.Now().Add(-60 * 24 * time.Hour).UTC().Format(time.RFC3339Nano)
		m["retention_days"] = 0
		data, err = json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(res.Tombstone.Path, data, 0o600))

		out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: archives, Name: "acme", KeepLast: 0, Layouts: []*instance.Layout{l}, Settings: opts.Settings})
		require.Error(t, err, "state %s", state)
		require.FileExists(t, quarantined, "state %s: the quarantine of a 30-day deletion was dropped on its edited tombstone's word", state)
		require.NotEmpty(t, out.Refused)
		assert.Contains(t, out.Refused[0].Reason, "keep(s) no retention record of their own")
		assert.Contains(t, out.Refused[0].Reason, "purge after "+res.Tombstone.PurgeAfter.UTC().Format(time.RFC3339))
		assert.Contains(t, out.Refused[0].Hint, "wait until")
		assert.Empty(t, out.Purged)
	}

	out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: archives, Name: "acme", KeepLast: 0, Layouts: []*instance.Layout{l}, Settings: opts.Settings,
		Now: res.Tombstone.PurgeAfter.Add(time.Minute)})
	require.NoError(t, err)
	assert.NoFileExists(t, quarantined)
	assert.Len(t, out.Purged, 2, "the quarantine and the archive: %+v", out.Purged)
}
