package softdelete_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// keptArchive returns the kept entry of archive path, failing when purge
// removed it or did not list it.
func keptArchive(t require.TestingT, out *softdelete.PurgeResult, path string) softdelete.Kept {
	for _, p := range out.Purged {
		require.NotEqual(t, path, p.Path, "purged: %s", p.Reason)
	}
	for _, k := range out.Kept {
		if k.Path == path {
			return k
		}
	}
	require.Fail(t, "archive not listed as kept", "%s: kept %+v", path, out.Kept)
	return softdelete.Kept{}
}

// TestPurgeTrust_EditedTombstoneRemovesNoArchiveEarly: acme deleted with
// a retention of 30 days; then its tombstone edited on the host as root
// could: state purged, purge_after and deleted_at in the past,
// retention_days 0. Purge with keep_last 0 keeps the archive, names the
// manifest's retention in its reason and says until when; once the 30
// days are over by the clock, the same purge removes it and says what
// confirmed it. The quarantine, which the tombstone no longer owns up to,
// is never touched.
func TestPurgeTrust_EditedTombstoneRemovesNoArchiveEarly(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	until := res.Tombstone.PurgeAfter
	past := time.Now().Add(-40 * 24 * time.Hour).UTC()
	editJSON(t, res.Tombstone.Path, func(m map[string]any) {
		m["state"] = softdelete.StatePurged
		m["purge_after"] = past.Add(time.Hour).Format(time.RFC3339Nano)
		m["deleted_at"] = past.Format(time.RFC3339Nano)
		m["retention_days"] = 0
	})
	for _, check := range []bool{true, false} {
		out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 0, CheckMode: check})
		require.NoError(t, err)
		k := keptArchive(t, out, res.Archive.Path)
		assert.Contains(t, k.Reason, "retention by the archive's own manifest")
		assert.Contains(t, k.Reason, "purge after "+until.UTC().Format(time.RFC3339))
		assert.Contains(t, k.Reason, "state purged")
		require.NotNil(t, k.Until)
		assert.True(t, k.Until.Equal(until), "until %s, want %s", k.Until, until)
		assert.Empty(t, out.Purged)
		_, err = os.Stat(res.Archive.Path)
		require.NoError(t, err, "the archive was removed 30 days early")
	}
	for _, q := range res.Quarantined {
		_, err := os.Lstat(q.To)
		require.NoError(t, err)
	}
	// Its retention over, by the clock: it goes, confirmed.
	out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 0, Now: until.Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, out.Purged, 1)
	assert.Equal(t, res.Archive.Path, out.Purged[0].Path)
	assert.Contains(t, out.Purged[0].Reason, "confirmed by the archive: its manifest says deleted")
	_, err = os.Stat(res.Archive.Path)
	assert.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
}

// TestPurgeTrust_KeepLastOneAndEditedOlderTombstone: acme deleted twice
// (30 days each); keep_last 1 keeps the newer archive, and the older
// one's tombstone, edited to purged with purge_after in the past, does
// not make purge remove the older archive either.
func TestPurgeTrust_KeepLastOneAndEditedOlderTombstone(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	first, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	require.NoError(t, f.AddInstance(ctx, "acme"))
	second, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	for _, res := range []*softdelete.Result{first, second} {
		editJSON(t, res.Tombstone.Path, func(m map[string]any) {
			m["state"] = softdelete.StatePurged
			m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
		})
	}
	out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 1})
	require.NoError(t, err)
	assert.Contains(t, keptArchive(t, out, second.Archive.Path).Reason, "keep_last")
	assert.Contains(t, keptArchive(t, out, first.Archive.Path).Reason, "retention by the archive's own manifest")
	for _, res := range []*softdelete.Result{first, second} {
		_, err := os.Stat(res.Archive.Path)
		require.NoError(t, err)
	}
}

// TestPurgeTrust_UncheckableArchiveIsKeptAndNamed: a tombstone edited to
// purged with purge_after in the past over an archive whose content no
// longer matches its sidecar (or whose sidecar is gone, or whose
// tombstone's archive_sha256 was changed): its manifest cannot be
// trusted, so it is kept, and the reason says why and what to do.
func TestPurgeTrust_UncheckableArchiveIsKeptAndNamed(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, word string
		spoil      func(t *testing.T, res *softdelete.Result)
	}{
		{"sidecar gone", "sidecar", func(t *testing.T, res *softdelete.Result) {
			require.NoError(t, os.Remove(res.Archive.Path+".sha256"))
		}},
		{"archive truncated", "archive", func(t *testing.T, res *softdelete.Result) {
			st, err := os.Stat(res.Archive.Path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(res.Archive.Path, st.Size()/2))
		}},
		{"tombstone sha256 edited", "its tombstone", func(t *testing.T, res *softdelete.Result) {
			editJSON(t, res.Tombstone.Path, func(m map[string]any) { m["archive_sha256"] = strings.Repeat("ab", 32) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fleettest.New(t, false, "acme")
			archives := filepath.Join(t.TempDir(), "archives")
			res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
			require.NoError(t, err)
			editJSON(t, res.Tombstone.Path, func(m map[string]any) {
				m["state"] = softdelete.StatePurged
				m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
			})
			tc.spoil(t, res)
			// Even once the manifest's retention is over: unchecked, it stays.
			out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Name: "acme", KeepLast: 0,
				Now: res.Tombstone.PurgeAfter.Add(time.Hour)})
			require.NoError(t, err)
			k := keptArchive(t, out, res.Archive.Path)
			assert.Contains(t, k.Reason, "could not be confirmed by the manifest inside it")
			assert.Contains(t, k.Reason, tc.word)
			assert.Contains(t, k.Reason, "by hand")
			_, err = os.Stat(res.Archive.Path)
			require.NoError(t, err)
		})
	}
}

// deletionOf is one real deletion the property below edits copies of.
type deletionOf struct {
	id, file   string
	sha        string
	purgeAfter time.Time // its manifest's
}

// TestPurgeTrust_EditedTombstonesProperty: acme deleted three times, with
// retentions of 30, 0 and 1 days (real archives, real tombstones); then,
// on a copy of the archive directory per case, its tombstones edited at
// random as root could: state, purge_after, deleted_at, retention_days,
// id, archive_path, archive_sha256, retention_records, or the tombstone
// removed; and purge run with a random keep_last at a random instant,
// in check mode or not. No archive whose manifest's retention is not
// over at that instant is ever removed (or reported as to be removed in
// check mode); every archive is listed exactly once, and every one kept
// is named with a reason; what is reported purged is gone and what is
// kept is still there.
func TestPurgeTrust_EditedTombstonesProperty(t *testing.T) {
	fewChecks(t, 60)
	ctx := context.Background()
	f := fleettest.New(t, false, "acme")
	origin := filepath.Join(t.TempDir(), "archives")
	var dels []deletionOf
	for i, days := range []int{30, 0, 1} {
		if i > 0 {
			require.NoError(t, f.AddInstance(ctx, "acme"))
		}
		req := request(f, origin, "acme")
		req.RetentionDays = days
		res, err := softdelete.Delete(ctx, f.Layout, req)
		require.NoError(t, err)
		dels = append(dels, deletionOf{id: res.Tombstone.ID, file: filepath.Base(res.Archive.Path), sha: res.Archive.SHA256, purgeAfter: res.Tombstone.PurgeAfter})
	}
	start := time.Now().UTC()
	states := []string{"", softdelete.StatePurged, softdelete.StateRestored, softdelete.StateAbandoned, softdelete.StateArchiving,
		softdelete.StateQuarantining, softdelete.StateQuarantined, softdelete.StateRollingBack, softdelete.StatePurging, "gone-by-hand"}
	rapid.Check(t, func(rt *rapid.T) {
		archives, err := os.MkdirTemp("", "fspurgetrust")
		require.NoError(rt, err)
		defer os.RemoveAll(archives)
		copyDir(rt, filepath.Join(origin, "acme"), filepath.Join(archives, "acme"))
		dir := filepath.Join(archives, "acme")
		for i, d := range dels {
			ts := filepath.Join(dir, d.id+".tombstone.json")
			if rapid.IntRange(0, 9).Draw(rt, fmt.Sprintf("remove tombstone %d", i)) == 0 {
				require.NoError(rt, os.Remove(ts))
				continue
			}
			other := dels[rapid.IntRange(0, len(dels)-1).Draw(rt, fmt.Sprintf("other %d", i))]
			state := rapid.SampledFrom(states).Draw(rt, fmt.Sprintf("state %d", i))
			pa := rapid.IntRange(0, 4).Draw(rt, fmt.Sprintf("purge_after %d", i))
			da := rapid.IntRange(0, 2).Draw(rt, fmt.Sprintf("deleted_at %d", i))
			days := rapid.IntRange(-1, 2).Draw(rt, fmt.Sprintf("retention_days %d", i))
			idEdit := rapid.IntRange(0, 4).Draw(rt, fmt.Sprintf("id %d", i))
			pathEdit := rapid.IntRange(0, 4).Draw(rt, fmt.Sprintf("archive_path %d", i))
			shaEdit := rapid.IntRange(0, 4).Draw(rt, fmt.Sprintf("archive_sha256 %d", i))
			dropFlag := rapid.Bool().Draw(rt, fmt.Sprintf("drop retention_records %d", i))
			editJSON(rt, ts, func(m map[string]any) {
				if state != "" {
					m["state"] = state
				}
				switch pa {
				case 1:
					m["purge_after"] = start.Add(-time.Hour).Format(time.RFC3339Nano)
				case 2:
					m["purge_after"] = time.Time{}.Format(time.RFC3339Nano)
				case 3:
					delete(m, "purge_after")
				case 4:
					m["purge_after"] = start.Add(90 * 24 * time.Hour).Format(time.RFC3339Nano)
				}
				switch da {
				case 1:
					m["deleted_at"] = start.Add(-365 * 24 * time.Hour).Format(time.RFC3339Nano)
				case 2:
					delete(m, "deleted_at")
				}
				if days >= 0 {
					m["retention_days"] = days
				}
				switch idEdit {
				case 1:
					m["id"] = other.id
				case 2:
					m["id"] = "20200101T000000.000000Z-0badc0de"
				}
				switch pathEdit {
				case 1:
					m["archive_path"] = ""
				case 2:
					m["archive_path"] = filepath.Join(dir, other.file)
				case 3:
					m["archive_path"] = filepath.Join(dir, "20200101T000000.000000Z-0badc0de.tar.zst")
				}
				switch shaEdit {
				case 1:
					m["archive_sha256"] = ""
				case 2:
					m["archive_sha256"] = other.sha
				case 3:
					m["archive_sha256"] = strings.Repeat("0", 64)
				}
				if dropFlag {
					delete(m, "retention_records")
				}
			})
		}
		keep := rapid.IntRange(0, 2).Draw(rt, "keep_last")
		now := start.Add(time.Duration(rapid.IntRange(0, 40*24).Draw(rt, "hours")) * time.Hour)
		check := rapid.Bool().Draw(rt, "check mode")
		// No layout: every quarantine a tombstone still claims is
		// refused, so that the fleet's real quarantines, shared by every
		// case, stay as they are; archives are decided all the same.
		out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: archives, Name: "acme", KeepLast: keep, Now: now, CheckMode: check})
		if err != nil {
			var inc *softdelete.PurgeIncompleteError
			require.True(rt, errors.As(err, &inc), "%v", err)
			for _, r := range inc.Refused {
				require.NotEqual(rt, "archive", r.Kind, "archive refused: %+v", r)
			}
		}
		listed := map[string]string{}
		for _, p := range out.Purged {
			if p.Kind != "archive" {
				continue
			}
			require.Empty(rt, listed[p.Path], "%s listed twice", p.Path)
			listed[p.Path] = "purged: " + p.Reason
		}
		for _, k := range out.Kept {
			if k.Kind != "archive" {
				continue
			}
			require.Empty(rt, listed[k.Path], "%s listed twice", k.Path)
			require.NotEmpty(rt, k.Reason, "%s kept without a reason", k.Path)
			listed[k.Path] = "kept: " + k.Reason
		}
		require.Len(rt, listed, len(dels), "%v", listed)
		for _, d := range dels {
			p := filepath.Join(dir, d.file)
			got := listed[p]
			purged := strings.HasPrefix(got, "purged: ")
			if purged && now.Before(d.purgeAfter) {
				rt.Fatalf("%s removed at %s, its manifest's retention ends %s: %s", d.file, now, d.purgeAfter, got)
			}
			if purged {
				require.Contains(rt, got, "confirmed by the archive: its manifest says deleted")
			}
			_, serr := os.Stat(p)
			require.Equal(rt, purged && !check, errors.Is(serr, os.ErrNotExist), "%s: %s; on disk: %v", d.file, got, serr)
		}
	})
}

// copyDir copies the regular files of src into a new directory dst.
func copyDir(t require.TestingT, src, dst string) {
	require.NoError(t, os.Mkdir(dst, 0o700))
	ents, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		out, err := os.OpenFile(filepath.Join(dst, e.Name()), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		require.NoError(t, err)
		_, err = io.Copy(out, in)
		in.Close()
		require.NoError(t, err)
		require.NoError(t, out.Close())
	}
}

// TestTrust_RollingBackTombstoneRemovesOnlyItsOwnArchive: the same class
// outside purge. A deletion left rolling_back has its archive removed by
// the next restore, which settles it (the archive missed late changes).
// acme deleted twice; the newer tombstone edited to rolling_back with its
// archive_path naming the older deletion's archive: the restore moves the
// newer deletion's components back, as it must, but removes no archive
// of another deletion, and says so.
func TestTrust_RollingBackTombstoneRemovesOnlyItsOwnArchive(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	first, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	require.NoError(t, f.AddInstance(ctx, "acme"))
	second, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	editJSON(t, second.Tombstone.Path, func(m map[string]any) {
		m["state"] = softdelete.StateRollingBack
		m["note"] = "late changes: edited"
		m["archive_path"] = first.Archive.Path
	})
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	notes := strings.Join(rr.Notes, "; ") + " " + rr.Msg
	assert.Contains(t, notes, "not its own")
	for _, p := range []string{first.Archive.Path, first.Archive.Path + ".sha256", second.Archive.Path} {
		_, err := os.Stat(p)
		require.NoError(t, err, "an archive of another deletion was removed")
	}
	_, err = archive.VerifyArchive(ctx, first.Archive.Path)
	require.NoError(t, err)
}
