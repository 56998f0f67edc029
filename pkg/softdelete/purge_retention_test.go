package softdelete_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestPurge_RetentionNeedsTheQuarantinesOwnRecord (FINDINGS-4 #4): a
// tombstone whose purge_after was edited into the past purges nothing
// while the quarantine's own record (a file in each trash entry, the
// quarantined database's comment) says retention is not over; the
// refusal names both dates. Records removed are no agreement either,
// whether the tombstone or only the archive's manifest says they were
// written (FINDINGS-6 #2). A quarantine without a record of its own (an
// earlier release's: neither says so) is purged on the tombstone's word,
// and the result says so. A database restored from quarantine gets its own comment
// back.
func TestPurge_RetentionNeedsTheQuarantinesOwnRecord(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	admin, err := f.PG.Open(ctx, "postgres")
	require.NoError(t, err)
	defer admin.Close()
	_, err = admin.ExecContext(ctx, "COMMENT ON DATABASE "+pgdump.QuoteIdent(f.Database("acme"))+" IS 'the tenant''s own'")
	require.NoError(t, err)
	waitNoConnections(t, f.PG, f.Database("acme"))

	// Restored from quarantine: its comment is its own again.
	_, err = softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	var comment string
	require.NoError(t, admin.QueryRowContext(ctx, "SELECT pg_catalog.shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", f.Database("acme")).Scan(&comment))
	assert.Equal(t, "the tenant's own", comment)
	waitNoConnections(t, f.PG, f.Database("acme"))
	time.Sleep(1100 * time.Millisecond) // archive names carry seconds

	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	var dbq string
	records := map[string]bool{}
	for _, q := range res.Quarantined {
		if q.Type == "postgresql" {
			dbq = q.To
		} else {
			records[filepath.Join(filepath.Dir(q.To), kind.RetentionFile)] = true
		}
	}
	require.NotEmpty(t, dbq)
	require.NotEmpty(t, records)
	for r := range records {
		_, err := os.Stat(r)
		require.NoError(t, err, "the trash entry keeps its retention record")
	}

	// The tombstone's purge_after edited into the past.
	data, err := os.ReadFile(res.Tombstone.Path)
	require.NoError(t, err)
	var ts map[string]any
	require.NoError(t, json.Unmarshal(data, &ts))
	ts["purge_after"] = "2020-01-02T00:00:00Z"
	data, err = json.MarshalIndent(ts, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(res.Tombstone.Path, data, 0o600))
	own := res.Tombstone.PurgeAfter.UTC().Format(time.RFC3339)

	purge := func() (*softdelete.PurgeResult, error) {
		return softdelete.PurgeReport(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 1, PG: f.PG})
	}
	held := func() {
		t.Helper()
		for _, q := range res.Quarantined {
			if q.Type == "postgresql" {
				var n int
				require.NoError(t, admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", q.To).Scan(&n))
				assert.Equal(t, 1, n, "quarantined database %s kept", q.To)
			} else {
				_, err := os.Lstat(q.To)
				assert.NoError(t, err, "quarantine %s kept", q.To)
			}
		}
	}
	refusedOn := func(where string) {
		t.Helper()
		pr, err := purge()
		var pe *softdelete.PurgeIncompleteError
		require.True(t, errors.As(err, &pe), "purge on an edited tombstone: %v", err)
		assert.Empty(t, pr.Purged)
		assert.False(t, pr.Changed)
		require.NotEmpty(t, pr.Refused)
		for _, r := range pr.Refused {
			assert.Contains(t, r.Reason, "2020-01-02T00:00:00Z")
			assert.Contains(t, r.Reason, own)
			assert.Contains(t, r.Reason, where)
			assert.Contains(t, r.Hint, own)
		}
		held()
	}
	refusedOn(kind.RetentionFile)

	// Without the trash entries' records, the database's comment still
	// says no.
	for r := range records {
		require.NoError(t, os.Remove(r))
	}
	refusedOn("the comment of database " + dbq)

	// Neither keeps a record, but the deletion says it wrote them (its
	// tombstone's retention_records): removed records are no agreement
	// (FINDINGS-6 #2), refused, each missing record named.
	_, err = admin.ExecContext(ctx, "COMMENT ON DATABASE "+pgdump.QuoteIdent(dbq)+" IS NULL")
	require.NoError(t, err)
	missing := func(said string) {
		t.Helper()
		pr, err := purge()
		var pe *softdelete.PurgeIncompleteError
		require.True(t, errors.As(err, &pe), "purge with every record removed: %v", err)
		assert.Empty(t, pr.Purged)
		require.NotEmpty(t, pr.Refused)
		for _, r := range pr.Refused {
			assert.Contains(t, r.Reason, said)
			assert.Contains(t, r.Reason, "keeps its own retention records")
			assert.Contains(t, r.Reason, "the comment of database "+dbq)
			for rec := range records {
				assert.Contains(t, r.Reason, rec)
			}
		}
		held()
	}
	assert.Equal(t, true, ts["retention_records"], "the tombstone says records were written")
	missing("(retention_records)")

	// The tombstone's flag dropped too: the manifest inside the verified
	// archive still says records were written.
	delete(ts, "retention_records")
	writeTS := func() {
		data, err := json.MarshalIndent(ts, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(res.Tombstone.Path, data, 0o600))
	}
	writeTS()
	missing("the manifest of archive")

	// A deletion by a release before records: neither its tombstone nor
	// its archive's manifest says records were written (the archive is
	// rewritten here without the flag, its sidecar and the tombstone's
	// archive_sha256 following, which is also what root rewriting all
	// three can do): purged on the tombstone's word, and said so.
	arch := ts["archive_path"].(string)
	forgeArchive(t, arch, func(m *archive.Manifest) { m.RetentionRecords = false }, nil)
	side, err := os.ReadFile(arch + ".sha256")
	require.NoError(t, err)
	ts["archive_sha256"] = strings.Fields(string(side))[0]
	writeTS()
	pr, err := purge()
	require.NoError(t, err)
	require.Len(t, pr.Purged, len(res.Quarantined))
	for _, p := range pr.Purged {
		assert.Contains(t, p.Reason, "retention taken from the tombstone alone")
		assert.True(t, strings.Contains(p.Reason, "2020-01-02T00:00:00Z"))
	}
}
