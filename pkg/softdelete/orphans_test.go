package softdelete_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// orphanKeys are a RESTORE.md and a sidecar describing an archive that
// was never written, as a deletion killed after them (older versions
// wrote them before the archive) or a clean-up that failed leaves them.
var orphanKeys = []string{
	"acme/20200101T000000.000000Z-deadbeef.tar.zst" + archive.RunbookSuffix,
	"acme/20200101T000000.000000Z-deadbeef.tar.zst.sha256",
}

// runOrphanSweeper runs one of the three runs that take an instance's
// lock and returns what it says of orphans, and whether it changed
// anything.
func runOrphanSweeper(t *testing.T, f *fleettest.Fleet, st store.Store, run string, check bool) ([]softdelete.Orphan, bool) {
	t.Helper()
	ctx := context.Background()
	switch run {
	case "delete":
		req := request(f, "", "acme")
		req.Store, req.CheckMode = st, check
		res, err := softdelete.Delete(ctx, f.Layout, req)
		require.NoError(t, err)
		require.NotNil(t, res)
		return res.Orphans, res.Changed
	case "restore":
		res, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", Store: st, CheckMode: check, Options: f.Options()})
		require.NoError(t, err)
		return res.Orphans, res.Changed
	default:
		res, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{Store: st, Name: "acme", KeepLast: 1, CheckMode: check, Layouts: []*instance.Layout{f.Layout}})
		require.NoError(t, err)
		return res.Orphans, res.Changed
	}
}

// TestOrphans_EveryRunRemovesThem plants a RESTORE.md and a sidecar whose
// archive the store does not hold, in a directory store and in a bucket,
// and checks that a soft delete, a restore and a purge each find them:
// check mode names them and leaves them; a real run removes them and says
// so (changed); the next run finds none. The real archive beside them,
// its sidecar and its tombstone are untouched.
func TestOrphans_EveryRunRemovesThem(t *testing.T) {
	ctx := context.Background()
	bucket := s3test.Bucket(t, false)
	for _, where := range []string{"dir", "s3"} {
		for _, run := range []string{"delete", "restore", "purge"} {
			t.Run(where+"/"+run, func(t *testing.T) {
				var st store.Store
				if where == "s3" {
					st = s3test.Store(t, bucket, run)
				} else {
					var err error
					st, err = store.Open(ctx, filepath.Join(t.TempDir(), "archives"))
					require.NoError(t, err)
				}
				f := fleettest.New(t, false, "acme")
				req := request(f, "", "acme")
				req.Store = st
				del, err := softdelete.Delete(ctx, f.Layout, req)
				require.NoError(t, err)
				if run == "restore" {
					// Back in place: the restores below only sweep.
					_, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", Store: st, Options: f.Options()})
					require.NoError(t, err)
				}
				before, err := st.List(ctx, "acme/")
				require.NoError(t, err)
				for _, k := range orphanKeys {
					require.NoError(t, st.Put(ctx, k, []byte("describes "+strings.TrimSuffix(k, archive.RunbookSuffix)+"\n")))
				}

				orphans, changed := runOrphanSweeper(t, f, st, run, true)
				require.Len(t, orphans, 2, "check mode names both orphans")
				assert.True(t, changed, "check mode says a real run would change something")
				for _, o := range orphans {
					assert.Equal(t, "would_remove", o.Action)
					assert.Equal(t, st.Location("acme/20200101T000000.000000Z-deadbeef.tar.zst"), o.Archive)
				}
				for _, k := range orphanKeys {
					_, err := st.Stat(ctx, k)
					assert.NoError(t, err, "check mode removed %s", k)
				}

				orphans, changed = runOrphanSweeper(t, f, st, run, false)
				require.Len(t, orphans, 2)
				assert.True(t, changed, "removing orphans is a change")
				for _, o := range orphans {
					assert.Equal(t, "removed", o.Action, "%+v", o)
				}
				for _, k := range orphanKeys {
					_, err := st.Stat(ctx, k)
					assert.ErrorIs(t, err, store.ErrNotExist, "%s is still there", k)
				}
				for _, o := range before {
					_, err := st.Stat(ctx, o.Key)
					assert.NoError(t, err, "%s (of the real deletion %s) was removed", o.Key, del.Tombstone.ID)
				}
				orphans, _ = runOrphanSweeper(t, f, st, run, false)
				assert.Empty(t, orphans, "the next run finds none")
			})
		}
	}
}

// TestOrphans_LockedRunbookIsMarked: in a bucket with Object Lock, an
// orphan RESTORE.md and sidecar under governance retention cannot be
// removed; the run puts a warning in the runbook's place as its newest
// version (what a by-hand GET reads), reports the sidecar it had to
// leave, and a second run does not write the warning again.
func TestOrphans_LockedRunbookIsMarked(t *testing.T) {
	ctx := context.Background()
	client := s3test.Client(t)
	bucket := s3test.Bucket(t, true)
	st := s3test.Store(t, bucket, "locked")
	f := fleettest.New(t, false, "acme")
	req := request(f, "", "acme")
	req.Store = st
	_, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	until := time.Now().Add(24 * time.Hour)
	for _, k := range orphanKeys {
		body := []byte("# Restore acme by hand\nfetch the archive ...\n")
		_, err := client.PutObject(ctx, bucket, "locked/"+k, bytes.NewReader(body), int64(len(body)),
			minio.PutObjectOptions{Mode: minio.Governance, RetainUntilDate: until})
		require.NoError(t, err)
	}

	orphans, changed := runOrphanSweeper(t, f, st, "delete", false)
	require.Len(t, orphans, 2)
	assert.True(t, changed)
	byAction := map[string]softdelete.Orphan{}
	for _, o := range orphans {
		byAction[o.Action] = o
	}
	require.Contains(t, byAction, "marked", "%+v", orphans)
	require.Contains(t, byAction, "left", "%+v", orphans)
	assert.True(t, strings.HasSuffix(byAction["marked"].Object, archive.RunbookSuffix))
	assert.NotEmpty(t, byAction["left"].Error)
	o, err := client.GetObject(ctx, bucket, "locked/"+orphanKeys[0], minio.GetObjectOptions{})
	require.NoError(t, err)
	got, err := io.ReadAll(o)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(got), "# WARNING: no archive here"), "a by-hand reader gets the warning: %s", got)
	assert.Contains(t, string(got), "20200101T000000.000000Z-deadbeef.tar.zst")

	orphans, changed = runOrphanSweeper(t, f, st, "delete", false)
	require.Len(t, orphans, 2)
	assert.False(t, changed, "the warning is not written twice")
	for _, o := range orphans {
		assert.NotEqual(t, "removed", o.Action)
	}
}

// TestInterrupted_LockedLeftoversAreReported: a deletion interrupted
// before its archive was complete, in a bucket whose objects are locked
// (a default retention): the next run cannot remove the incomplete
// archive and its RESTORE.md, and says so instead of passing over it; the
// deletion is marked abandoned, so nothing uses that archive.
func TestInterrupted_LockedLeftoversAreReported(t *testing.T) {
	ctx := context.Background()
	client := s3test.Client(t)
	bucket := s3test.Bucket(t, true)
	st := s3test.Store(t, bucket, "left")
	f := fleettest.New(t, false, "acme")
	req := request(f, "", "acme")
	req.Store = st
	_, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	const id = "20200102T000000.000000Z-cafebabe"
	until := time.Now().Add(24 * time.Hour)
	for _, k := range []string{"acme/" + id + ".tar.zst", "acme/" + id + ".tar.zst" + archive.RunbookSuffix} {
		body := []byte("incomplete\n")
		_, err := client.PutObject(ctx, bucket, "left/"+k, bytes.NewReader(body), int64(len(body)),
			minio.PutObjectOptions{Mode: minio.Governance, RetainUntilDate: until})
		require.NoError(t, err)
	}
	ts := `{"id":"` + id + `","instance":"acme","app":"` + f.App + `","components":[],"archive_path":"` +
		st.Location("acme/"+id+".tar.zst") + `","state":"archiving","deleted_at":"2020-01-02T00:00:00Z","purge_after":"2020-02-01T00:00:00Z"}`
	require.NoError(t, st.Put(ctx, "acme/"+id+".tombstone.json", []byte(ts)))

	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	warnings := strings.Join(res.Warnings, "\n")
	assert.Contains(t, warnings, "could not all be removed", warnings)
	assert.Contains(t, warnings, "marked abandoned")
	rc, err := st.Open(ctx, "acme/"+id+".tombstone.json")
	require.NoError(t, err)
	data, err := io.ReadAll(rc)
	rc.Close()
	require.NoError(t, err)
	assert.Contains(t, string(data), `"state": "abandoned"`)
}

// TestSpare_RunbookSaysNothingWasDeleted: a soft delete into a bucket
// killed after its archive was written and verified, before its tombstone
// said anything moved, leaves a complete archive and its RESTORE.md. The
// next run records the attempt as abandoned and keeps the archive as a
// spare copy; its RESTORE.md, the first thing a by-hand reader opens,
// then says on top that the instance was not deleted by it, followed by
// the runbook as written. A further run does not stack the note.
func TestSpare_RunbookSaysNothingWasDeleted(t *testing.T) {
	ctx := context.Background()
	st := s3test.Store(t, s3test.Bucket(t, false), "spare")
	f := fleettest.New(t, false, "acme")
	req := request(f, "", "acme")
	req.Store = st
	req.AfterStep = func(step string) {
		if step == "verify" {
			panic("killed")
		}
	}
	func() {
		defer func() { assert.Equal(t, "killed", recover()) }()
		_, _ = softdelete.Delete(ctx, f.Layout, req)
	}()
	objs, err := st.List(ctx, "acme/")
	require.NoError(t, err)
	var runbook string
	for _, o := range objs {
		if strings.HasSuffix(o.Key, archive.RunbookSuffix) {
			runbook = o.Key
		}
	}
	require.NotEmpty(t, runbook, "the killed run left its RESTORE.md: %+v", objs)
	read := func() string {
		rc, err := st.Open(ctx, runbook)
		require.NoError(t, err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		return string(b)
	}
	written := read()
	require.False(t, strings.HasPrefix(written, "# NOTE: a spare copy"))

	// The next soft delete settles it, then deletes acme for real.
	req.AfterStep = nil
	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	assert.Contains(t, strings.Join(res.Warnings, "\n"), "was written and verified, before its tombstone")
	marked := read()
	assert.True(t, strings.HasPrefix(marked, "# NOTE: a spare copy, not a deletion\n"), "%.300s", marked)
	assert.Contains(t, marked, "acme was NOT deleted by it")
	assert.True(t, strings.HasSuffix(marked, written), "the runbook as written follows the note")

	// Restores and purges that settle nothing leave it as it is.
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", Store: st, Options: f.Options()})
	require.NoError(t, err)
	again := request(f, "", "acme")
	again.Store = st
	_, err = softdelete.Delete(ctx, f.Layout, again)
	require.NoError(t, err)
	assert.Equal(t, marked, read(), "the note is put once")
}
