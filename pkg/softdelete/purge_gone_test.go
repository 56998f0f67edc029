package softdelete_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// TestRestore_PassesOverPurgedDeletionWhoseArchiveIsGone is the
// regression test of f1d68b6 (found by internal/model
// TestModel_CrashRestore, seed 3033490719781123026): acme is deleted,
// restored, deleted again; the second deletion is purged and its archive
// then removed from the store. A restore must pass over that purged
// deletion (its tombstone is only a record) to the first deletion's
// archive, on the file store and on S3: the store's own not-found
// (store.ErrNotExist) is no fs.ErrNotExist.
func TestRestore_PassesOverPurgedDeletionWhoseArchiveIsGone(t *testing.T) {
	for _, kind := range []string{"file", "s3"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			var st store.Store
			archives := ""
			if kind == "file" {
				archives = filepath.Join(t.TempDir(), "archives")
			} else {
				st = s3test.Store(t, s3test.Bucket(t, false), "gone")
			}
			f := fleettest.New(t, true, "acme")
			before := f.Snapshot(t, "acme")
			del := func() *softdelete.Result {
				req := request(f, archives, "acme")
				req.Store = st
				res, err := softdelete.Delete(ctx, f.Layout, req)
				require.NoError(t, err)
				return res
			}
			first := del()
			_, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Store: st, Options: f.Options()})
			require.NoError(t, err)
			time.Sleep(1100 * time.Millisecond) // archive names carry seconds
			second := del()

			later := second.Tombstone.PurgeAfter.Add(time.Hour)
			purged, err := softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, Store: st,
				Name: "acme", KeepLast: 2, PG: f.PG, Now: later})
			require.NoError(t, err)
			require.NotEmpty(t, purged)
			ts, err := softdelete.ReadTombstone(second.Tombstone.Path)
			if err == nil {
				require.Equal(t, softdelete.StatePurged, ts.State)
			}

			// The second archive (and its sidecars) goes from the store.
			s := st
			if s == nil {
				s, err = store.NewFile(archives)
				require.NoError(t, err)
			}
			key := strings.TrimPrefix(strings.TrimPrefix(second.Archive.Path, strings.TrimSuffix(s.Location(""), "/")), "/")
			objs, err := s.List(ctx, key)
			require.NoError(t, err)
			require.NotEmpty(t, objs, "no object under %s", key)
			for _, o := range objs {
				require.NoError(t, s.Remove(ctx, o.Key))
			}
			_, err = s.Stat(ctx, key)
			require.ErrorIs(t, err, store.ErrNotExist)

			rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Store: st, Options: f.Options()})
			require.NoError(t, err, "a purged deletion whose archive is gone must be passed over")
			assert.Equal(t, softdelete.SourceArchive, rr.Source)
			assert.Equal(t, first.Archive.Path, rr.Archive, "restored from the first deletion's archive")
			assert.Equal(t, before, f.Snapshot(t, "acme"))
		})
	}
}
