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
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// editJSON rewrites the JSON object in file through edit.
func editJSON(t require.TestingT, file string, edit func(m map[string]any)) {
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	edit(m)
	data, err = json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, data, 0o600))
}

// trashRecords lists the retention record of every trash entry of a
// deletion (each quarantined path's entry; databases keep theirs in their
// comment).
func trashRecords(t require.TestingT, res *softdelete.Result) map[string]bool {
	out := map[string]bool{}
	for _, q := range res.Quarantined {
		if q.Type == instance.TypePostgreSQL || q.Type == "mysql" {
			continue
		}
		r := filepath.Join(filepath.Dir(q.To), kind.RetentionFile)
		_, err := os.Stat(r)
		require.NoError(t, err, "the trash entry keeps its record")
		out[r] = true
	}
	return out
}

// TestRecords_RemovedWhateverTheTombstoneSays (FINDINGS-6 #2), a
// property: acme (dirs and a unit, no database) deleted with
// retention 30 days; then, at random, some of its trash entries' records
// removed, and the tombstone edited as root would: purge_after in the
// past, retention_records dropped, archive_path blanked, state set to
// purging. The archive is left as it is. Purge removes nothing of the
// quarantine, nor the archive; when every record is missing, the refusal
// names them.
func TestRecords_RemovedWhateverTheTombstoneSays(t *testing.T) {
	fewChecks(t, 8)
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		f := fleettest.New(t, false, "acme")
		archives := filepath.Join(t.TempDir(), "archives")
		res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
		require.NoError(rt, err)
		records := trashRecords(rt, res)
		var removed []string
		for r := range records {
			if rapid.Bool().Draw(rt, "remove "+filepath.Base(filepath.Dir(filepath.Dir(r)))) {
				require.NoError(rt, os.Remove(r))
				removed = append(removed, r)
			}
		}
		dropFlag := rapid.Bool().Draw(rt, "drop retention_records")
		blank := rapid.Bool().Draw(rt, "blank archive_path")
		purging := rapid.Bool().Draw(rt, "state purging")
		editJSON(rt, res.Tombstone.Path, func(m map[string]any) {
			m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
			m["retention_days"] = 0
			if dropFlag {
				delete(m, "retention_records")
			}
			if blank {
				m["archive_path"] = ""
				m["archive_sha256"] = ""
			}
			if purging {
				m["state"] = softdelete.StatePurging
			}
		})
		out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 0})
		require.Error(rt, err, "an edited tombstone purged")
		assert.Empty(rt, out.Purged)
		_, err = os.Stat(res.Archive.Path)
		require.NoError(rt, err, "the archive was purged")
		for _, q := range res.Quarantined {
			_, err := os.Lstat(q.To)
			require.NoError(rt, err, "%s was removed 30 days early", q.To)
		}
		reasons := ""
		for _, r := range out.Refused {
			reasons += r.Reason + "\n"
		}
		for _, r := range removed {
			if len(removed) < len(records) {
				break // the records left disagree first
			}
			assert.Contains(rt, reasons, r, "the missing record is not named")
		}
		if len(removed) == len(records) {
			assert.Contains(rt, reasons, "keeps its own retention records")
		}
	})
}

// TestRecords_ArchiveGoneCannotTell: every record removed, the
// tombstone's retention_records dropped and purge_after edited, and the
// archive it names moved away: purge cannot tell the quarantine from one
// of a release before records, and refuses, saying so and how to go on.
func TestRecords_ArchiveGoneCannotTell(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	for r := range trashRecords(t, res) {
		require.NoError(t, os.Remove(r))
	}
	editJSON(t, res.Tombstone.Path, func(m map[string]any) {
		m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
		delete(m, "retention_records")
	})
	away := t.TempDir()
	for _, p := range []string{res.Archive.Path, res.Archive.Path + ".sha256"} {
		require.NoError(t, os.Rename(p, filepath.Join(away, filepath.Base(p))))
	}
	out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 0})
	require.Error(t, err)
	assert.Empty(t, out.Purged)
	require.NotEmpty(t, out.Refused)
	assert.Contains(t, out.Refused[0].Reason, "does not say whether deletion")
	assert.Contains(t, out.Refused[0].Hint, "archive")
	for _, q := range res.Quarantined {
		_, err := os.Lstat(q.To)
		assert.NoError(t, err)
	}
}

// TestRecords_InterruptedPurgeFinishesWithoutItsRecord: a purge that
// checked the records and began removing a trash entry (renamed to its
// purging name) may have removed the record with part of the content
// before it was killed: the next purge finishes, and says so. The same
// missing record in an entry that was never renamed (the tombstone's
// state set to purging by hand) is refused.
func TestRecords_InterruptedPurgeFinishesWithoutItsRecord(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res := deleted(t, f, archives, "acme")
	q := quarantineOf(t, res, "data")
	entry := filepath.Dir(q)

	// By hand: state purging, the record removed, the entry intact.
	editJSON(t, res.Tombstone.Path, func(m map[string]any) { m["state"] = softdelete.StatePurging })
	rec, err := os.ReadFile(filepath.Join(entry, kind.RetentionFile))
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(entry, kind.RetentionFile)))
	out, err := purgeAfter(t, archives, f, res, func(r *softdelete.PurgeRequest) { r.Now = time.Now() })
	require.Error(t, err, "state purging by hand and a record removed purged an intact quarantine")
	assert.Empty(t, out.Purged)
	assert.DirExists(t, q)
	require.NoError(t, os.WriteFile(filepath.Join(entry, kind.RetentionFile), rec, 0o600))
	editJSON(t, res.Tombstone.Path, func(m map[string]any) { m["state"] = softdelete.StateQuarantined })

	// A real purge, killed after renaming the entries, the data entry's
	// record already gone (as removeTree may leave it).
	func() {
		defer func() {
			if r := recover(); r != nil && r != "crash" {
				panic(r)
			}
		}()
		_, _ = purgeAfter(t, archives, f, res, func(r *softdelete.PurgeRequest) {
			r.AfterStep = func(step string) {
				if step == "rename" {
					require.NoError(t, os.Remove(filepath.Join(entry+softdelete.PurgingSuffix, kind.RetentionFile)))
					panic("crash")
				}
			}
		})
	}()
	ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	require.Equal(t, softdelete.StatePurging, ts.State)
	out, err = purgeAfter(t, archives, f, res, nil)
	require.NoError(t, err)
	assert.NotEmpty(t, out.Purged)
	var reasons []string
	for _, p := range out.Purged {
		reasons = append(reasons, p.Reason)
	}
	assert.Contains(t, strings.Join(reasons, "\n"), "no retention record any more")
	_, err = os.Lstat(entry + softdelete.PurgingSuffix)
	assert.True(t, errors.Is(err, os.ErrNotExist))
}

// TestRecords_ForcedRestoreAsideKeepsItsRecord: a forced restore moves
// the present config aside into quarantine under a tombstone of its own;
// that quarantine keeps its own record too, so an edited aside tombstone
// purges nothing, with the record there or removed.
func TestRecords_ForcedRestoreAsideKeepsItsRecord(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	_ = deleted(t, f, archives, "acme")
	_, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options(),
		Source: softdelete.SourceArchive, Components: []string{"config"}, Force: true})
	require.NoError(t, err)
	require.Len(t, rr.Replaced, 1)
	aside := rr.Replaced[0].To
	record := filepath.Join(filepath.Dir(aside), kind.RetentionFile)
	require.FileExists(t, record, "the move aside keeps its own retention record")
	tombs, err := softdelete.Tombstones(filepath.Join(archives, "acme"))
	require.NoError(t, err)
	var tsPath string
	for _, ts := range tombs {
		if len(ts.Components) == 1 && ts.Components[0].To == aside {
			tsPath = ts.Path
			assert.True(t, ts.RetentionRecords)
		}
	}
	require.NotEmpty(t, tsPath)
	editJSON(t, tsPath, func(m map[string]any) {
		m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	})
	purge := func() {
		t.Helper()
		out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 1})
		require.Error(t, err)
		assert.Empty(t, out.Purged)
		_, err = os.Lstat(aside)
		require.NoError(t, err, "the quarantine moved aside was purged before its retention")
	}
	purge()
	require.NoError(t, os.Remove(record))
	purge()
}
