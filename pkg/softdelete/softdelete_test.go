package softdelete_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

func request(f *fleettest.Fleet, archiveDir, name string) softdelete.Request {
	return softdelete.Request{Name: name, ArchiveDir: archiveDir, Reason: "customer left", RequestedBy: "alice",
		JobID: "42", RetentionDays: 30, Options: f.Options()}
}

func TestRoundTrip_QuarantineThenArchive(t *testing.T) {
	f := fleettest.New(t, true, "acme", "globex")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	before := f.Snapshot(t, "acme")
	other := f.Snapshot(t, "globex")

	// Soft delete.
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	assert.True(t, res.Changed)
	require.NotNil(t, res.Archive)
	assert.True(t, res.Archive.Verified)
	st, err := os.Stat(res.Archive.Path)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o600), st.Mode().Perm())
	assert.Len(t, res.Quarantined, 5) // config, data, logs, service, database
	_, err = f.Layout.Resolve(ctx, "acme", f.Options())
	var nf *instance.NotFoundError
	require.True(t, errors.As(err, &nf), "acme is gone: %v", err)
	insts, err := f.Layout.Discover(ctx, f.Options())
	require.NoError(t, err)
	assert.Equal(t, "globex", insts[0].Name)
	assert.Len(t, insts, 1, "a quarantined instance is not listed")

	// Re-running changes nothing and returns the tombstone.
	again, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	assert.False(t, again.Changed)
	assert.Equal(t, res.Tombstone.ID, again.Tombstone.ID)

	// Restore from quarantine: byte-identical.
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, softdelete.SourceQuarantine, rr.Source)
	assert.Equal(t, before, f.Snapshot(t, "acme"))

	// Restoring a complete instance changes nothing.
	rr, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.False(t, rr.Changed)

	// Delete again, purge once retention has passed, restore from the archive.
	res, err = softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	purged, err := softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 1, PG: f.PG,
		Now: res.Tombstone.PurgeAfter.Add(time.Minute)})
	require.NoError(t, err)
	assert.Len(t, purged, 6, "5 quarantined components and the older archive")
	rr, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Source: softdelete.SourceArchive, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, softdelete.SourceArchive, rr.Source)
	assert.ElementsMatch(t, []string{"config", "data", "logs", "database"}, rr.Restored)
	assert.Equal(t, before, f.Snapshot(t, "acme"))
	assert.Equal(t, other, f.Snapshot(t, "globex"), "the other instance is untouched")
}

func TestRestore_OnlyMissingComponents(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	before := f.Snapshot(t, "acme")
	_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Components: []string{"data"}, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, []string{"data"}, rr.Restored)
	assert.Equal(t, before.Trees["data"], fleettest.Tree(t, f.Path("data", "acme")))
	_, err = os.Stat(f.Path("config", "acme"))
	assert.True(t, os.IsNotExist(err))
}

func TestDelete_CheckModeChangesNothing(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	before := f.Snapshot(t, "acme")
	req := request(f, archives, "acme")
	req.CheckMode = true
	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	assert.True(t, res.Changed)
	require.NotNil(t, res.Plan)
	assert.Greater(t, res.Plan.Files, 5)
	assert.Equal(t, []string{f.Database("acme")}, res.Plan.Databases)
	_, err = os.Stat(archives)
	assert.True(t, os.IsNotExist(err), "nothing written")
	assert.Equal(t, before, f.Snapshot(t, "acme"))
}

func TestDelete_Refusals(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	before := f.Snapshot(t, "acme")

	t.Run("open connection", func(t *testing.T) {
		db, err := f.PG.Open(ctx, f.Database("acme"))
		require.NoError(t, err)
		defer db.Close()
		_, err = softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
		var re *softdelete.RefusedError
		require.True(t, errors.As(err, &re), "%v", err)
		assert.Contains(t, err.Error(), "1 open connection")
		assert.Contains(t, err.Error(), "application fleetsafe")
	})
	t.Run("fingerprint", func(t *testing.T) {
		req := request(f, archives, "acme")
		req.Fingerprint = strings.Repeat("0", 64)
		_, err := softdelete.Delete(ctx, f.Layout, req)
		assert.ErrorContains(t, err, "fingerprint")
	})
	t.Run("no reason", func(t *testing.T) {
		req := request(f, archives, "acme")
		req.Reason = " "
		_, err := softdelete.Delete(ctx, f.Layout, req)
		assert.ErrorContains(t, err, "no reason")
	})
	t.Run("hostile names", func(t *testing.T) {
		for _, bad := range []string{"*", "acme*", "../acme", "", "acme/..", ".fleetsafe-trash"} {
			_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, bad))
			var ie *instance.InvalidNameError
			assert.True(t, errors.As(err, &ie), "%q: %v", bad, err)
		}
	})
	t.Run("concurrent run", func(t *testing.T) {
		dir := filepath.Join(archives, "acme")
		require.NoError(t, os.MkdirAll(dir, 0o700))
		// Hold the lock as a concurrent run would.
		lockf, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		require.NoError(t, err)
		defer lockf.Close()
		require.NoError(t, flock(lockf))
		_, err = softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
		assert.ErrorContains(t, err, "another fleetsafe run holds the lock")
	})
	assert.Equal(t, before, f.Snapshot(t, "acme"), "every refusal changed nothing")
	ents, _ := filepath.Glob(filepath.Join(archives, "acme", "*.tar.zst"))
	assert.Empty(t, ents)
}

func TestDelete_RunbookAndManifest(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	m, err := archive.VerifyArchive(ctx, res.Archive.Path)
	require.NoError(t, err)
	assert.Equal(t, "acme", m.Instance)
	assert.Equal(t, "customer left", m.Reason)
	assert.Equal(t, "alice", m.RequestedBy)
	var links []string
	for _, e := range m.Files {
		if e.Type == "symlink" {
			links = append(links, e.LinkTarget)
		}
	}
	sort.Strings(links)
	assert.Equal(t, []string{"/etc/hostname", "depot/a1/file-000.bin"}, links, "links recorded, never followed")
	require.Len(t, m.Databases, 1)
	assert.Equal(t, 2, m.Databases[0].DataBlocks)
	sidecar, err := os.ReadFile(res.Archive.Path + ".sha256")
	require.NoError(t, err)
	assert.Equal(t, res.Archive.SHA256+"  "+filepath.Base(res.Archive.Path)+"\n", string(sidecar))
}

func TestVerifyArchive_DetectsCorruption(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	data, err := os.ReadFile(res.Archive.Path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(res.Archive.Path, data[:len(data)/2], 0o600))
	_, err = archive.VerifyArchive(ctx, res.Archive.Path)
	var ve *archive.VerifyError
	assert.True(t, errors.As(err, &ve), "%v", err)
}
