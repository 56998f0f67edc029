package softdelete_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

func TestPurge_AfterRetentionOnly(t *testing.T) {
	f := fleettest.New(t, true, "acme", "globex")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	other := f.Snapshot(t, "globex")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)

	// Before purge_after: nothing goes.
	purged, err := softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 1, PG: f.PG})
	require.NoError(t, err)
	assert.Empty(t, purged)

	// Check mode lists and keeps.
	later := res.Tombstone.PurgeAfter.Add(time.Hour)
	purged, err = softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 1, PG: f.PG, Now: later, CheckMode: true})
	require.NoError(t, err)
	assert.Len(t, purged, 5)
	for _, q := range res.Quarantined {
		if q.Type != "postgresql" {
			_, err := os.Lstat(q.To)
			assert.NoError(t, err, "check mode kept %s", q.To)
		}
	}

	purged, err = softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 1, PG: f.PG, Now: later})
	require.NoError(t, err)
	assert.Len(t, purged, 5)
	for _, q := range res.Quarantined {
		if q.Type == "postgresql" {
			_, err := f.PG.Open(ctx, q.To)
			assert.Error(t, err, "quarantined database dropped")
		} else {
			_, err := os.Lstat(q.To)
			assert.True(t, os.IsNotExist(err), "%s removed", q.To)
		}
	}
	ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StatePurged, ts.State)
	_, err = os.Stat(res.Archive.Path)
	assert.NoError(t, err, "the last archive is kept")
	assert.Equal(t, other, f.Snapshot(t, "globex"))

	// Idempotent.
	purged, err = softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 1, PG: f.PG, Now: later})
	require.NoError(t, err)
	assert.Empty(t, purged)

	// And the instance still comes back from its archive.
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, softdelete.SourceArchive, rr.Source)
}

func TestPurge_KeepLast(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	var paths []string
	for range 3 {
		res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
		require.NoError(t, err)
		paths = append(paths, res.Archive.Path)
		_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
		require.NoError(t, err)
		time.Sleep(1100 * time.Millisecond) // archive names carry seconds
	}
	_, err := softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 0, PG: f.PG})
	assert.ErrorContains(t, err, "keep_last 0")

	// Within retention keep_last removes nothing.
	purged, err := softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 2, PG: f.PG})
	require.NoError(t, err)
	require.Empty(t, purged)
	later := time.Now().Add(31 * 24 * time.Hour)
	purged, err = softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 2, PG: f.PG, Now: later})
	require.NoError(t, err)
	require.Len(t, purged, 1)
	assert.Equal(t, paths[0], purged[0].Path, "the oldest goes")
	_, err = os.Stat(paths[0] + ".sha256")
	assert.True(t, os.IsNotExist(err))
	for _, p := range paths[1:] {
		_, err := os.Stat(p)
		assert.NoError(t, err)
	}
	purged, err = softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 0, PG: f.PG, Now: later})
	require.NoError(t, err)
	assert.Len(t, purged, 2, "keep_last 0 is accepted with an explicit name")
}

func TestPurge_RefusesBadName(t *testing.T) {
	_, err := softdelete.Purge(context.Background(), softdelete.PurgeRequest{ArchiveDir: t.TempDir(), Name: "../x", KeepLast: 1})
	assert.ErrorContains(t, err, "invalid instance name")
}
