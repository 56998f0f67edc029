package softdelete

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Quarantine is one deletion whose components are still, wholly or in
// part, in quarantine on this host: what the metrics and the fleet report
// show. It carries the whole tombstone (reason, who, archive, purge time,
// and whatever a later tombstone records), read, never changed.
type Quarantine struct {
	*Tombstone
	// TombstonePath is where the tombstone is.
	TombstonePath string `json:"tombstone_path"`
	// PurgeDue is true when purge_after has passed at the time of the
	// listing: the next instance_purge removes the quarantine for good.
	PurgeDue bool `json:"purge_due"`
}

// inQuarantine reports whether a tombstone state means that something of
// the instance is in quarantine: a deletion that finished (quarantined),
// was interrupted while moving (quarantining) or moving back
// (rolling_back), or a purge that was interrupted (purging). An archiving
// or abandoned deletion moved nothing; a restored or purged one left
// nothing in quarantine.
func inQuarantine(state string) bool {
	switch state {
	case StateQuarantining, StateQuarantined, StateRollingBack, StatePurging:
		return true
	}
	return false
}

// ListQuarantine returns every deletion under archiveDir that has
// something in quarantine, of app (of every app when app is ""), sorted
// by purge time, then name and id. A missing archiveDir holds nothing. It
// only reads. A tombstone that cannot be read, an entry of archiveDir that
// is a link or not a directory, or a tombstone filed under another
// instance's directory is an error naming the file; every other deletion
// is still returned beside it, so that nothing is lost from the listing.
func ListQuarantine(archiveDir, app string, now time.Time) ([]Quarantine, error) {
	if archiveDir == "" {
		return []Quarantine{}, nil
	}
	if !filepath.IsAbs(archiveDir) {
		return []Quarantine{}, fmt.Errorf("archive_dir %q is not an absolute path", archiveDir)
	}
	st, err := store.Open(context.Background(), archiveDir)
	if err != nil {
		return []Quarantine{}, err
	}
	return ListQuarantineIn(context.Background(), st, app, now)
}

// ListQuarantineIn is ListQuarantine over any store.
func ListQuarantineIn(ctx context.Context, st store.Store, app string, now time.Time) ([]Quarantine, error) {
	out := []Quarantine{}
	all, err := folders(ctx, st)
	if err != nil {
		return out, fmt.Errorf("list the quarantine of archive_dir %s: %w", st.Location(""), err)
	}
	var errs []error
	for _, e := range all {
		sh := shelf{st: st, name: e.Name}
		if e.NotDir != "" {
			if e.Link {
				errs = append(errs, fmt.Errorf("archive_dir entry %s is %s, not a directory: its tombstones are not listed (purge refuses it too); replace it by the real directory", sh.where(), e.NotDir))
			}
			// A plain file beside the instance directories is not an
			// instance's; purge ignores it as well.
			continue
		}
		files, err := sh.files(ctx, tombstoneExt)
		if err != nil {
			errs = append(errs, fmt.Errorf("list tombstones of %s: %w", sh.where(), err))
			continue
		}
		for _, f := range files {
			ts, err := readTombstone(ctx, st, sh.key(f))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ts.Instance != e.Name {
				errs = append(errs, fmt.Errorf("tombstone %s: instance %q filed under the directory of %q; move it back to the directory of its instance", ts.Path, ts.Instance, e.Name))
				continue
			}
			if !inQuarantine(ts.State) || (app != "" && ts.App != app) {
				continue
			}
			out = append(out, Quarantine{Tombstone: ts, TombstonePath: ts.Path, PurgeDue: !now.Before(ts.PurgeAfter)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.PurgeAfter.Equal(b.PurgeAfter) {
			return a.PurgeAfter.Before(b.PurgeAfter)
		}
		if a.Instance != b.Instance {
			return a.Instance < b.Instance
		}
		return a.ID < b.ID
	})
	return out, errors.Join(errs...)
}
