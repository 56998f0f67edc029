package softdelete_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/encrypted"
)

// TestPurgeTrust_EncryptedArchive: an archive encrypted to an operator's
// key, purged on a host that has no identity (instance_purge takes none):
// its manifest cannot be read, so its deletion date is the one its name
// records and its retention_days its tombstone's. An edit of the
// tombstone's state, deleted_at and purge_after removes it no earlier;
// once its retention is over it goes, and the reason says on what
// ground; without a tombstone of its deletion it is kept, named.
func TestPurgeTrust_EncryptedArchive(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	operator, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	keys, err := encrypted.Ephemeral(encrypted.Keys{Recipients: []age.Recipient{operator.Recipient()}})
	require.NoError(t, err)
	files, err := store.NewFile(archives)
	require.NoError(t, err)
	req := request(f, archives, "acme")
	req.Store = encrypted.Wrap(files, keys)
	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	until := res.Tombstone.PurgeAfter
	editJSON(t, res.Tombstone.Path, func(m map[string]any) {
		m["state"] = softdelete.StatePurged
		m["deleted_at"] = time.Now().Add(-400 * 24 * time.Hour).UTC().Format(time.RFC3339Nano)
		m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	})
	purge := func(now time.Time) *softdelete.PurgeResult {
		out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 0, Now: now})
		require.NoError(t, err)
		return out
	}
	k := keptArchive(t, purge(time.Now()), res.Archive.Path)
	assert.Contains(t, k.Reason, "encrypted (age)")
	assert.Contains(t, k.Reason, "retention_days 30")
	require.NotNil(t, k.Until)
	assert.WithinDuration(t, until, *k.Until, time.Second)

	out := purge(until.Add(time.Minute))
	require.Len(t, out.Purged, 1, "%+v", out.Kept)
	assert.Contains(t, out.Purged[0].Reason, "its name says deleted")
	assert.Contains(t, out.Purged[0].Reason, "rests partly on its tombstone")
}

// TestPurgeTrust_EncryptedArchiveWithoutItsTombstone: the same archive
// whose tombstone says another deletion's id (and state purged): nothing it can be read by records a
// retention, so it is kept, and the reason says so.
func TestPurgeTrust_EncryptedArchiveWithoutItsTombstone(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	operator, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	keys, err := encrypted.Ephemeral(encrypted.Keys{Recipients: []age.Recipient{operator.Recipient()}})
	require.NoError(t, err)
	files, err := store.NewFile(archives)
	require.NoError(t, err)
	req := request(f, archives, "acme")
	req.Store = encrypted.Wrap(files, keys)
	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	editJSON(t, res.Tombstone.Path, func(m map[string]any) {
		m["id"] = "20200101T000000.000000Z-0badc0de"
		m["state"] = softdelete.StatePurged
	})
	out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: archives, Name: "acme", KeepLast: 0, Now: res.Tombstone.PurgeAfter.Add(time.Hour)})
	require.NoError(t, err)
	k := keptArchive(t, out, res.Archive.Path)
	assert.Contains(t, k.Reason, "no tombstone of deletion")
}
