package softdelete

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
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
	out := []Quarantine{}
	if archiveDir == "" {
		return out, nil
	}
	if !filepath.IsAbs(archiveDir) {
		return out, fmt.Errorf("archive_dir %q is not an absolute path", archiveDir)
	}
	ents, err := os.ReadDir(archiveDir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("list the quarantine of archive_dir %s: %w", archiveDir, err)
	}
	var errs []error
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(archiveDir, e.Name())
		if !e.IsDir() {
			if e.Type()&fs.ModeSymlink != 0 {
				target, _ := os.Readlink(dir)
				errs = append(errs, fmt.Errorf("archive_dir entry %s is a link to %q, not a directory: its tombstones are not listed (purge refuses it too); replace it by the real directory", dir, target))
			}
			// A plain file beside the instance directories is not an
			// instance's; purge ignores it as well.
			continue
		}
		files, err := filepath.Glob(filepath.Join(dir, "*.tombstone.json"))
		if err != nil {
			errs = append(errs, fmt.Errorf("list tombstones of %s: %w", dir, err))
			continue
		}
		for _, f := range files {
			ts, err := ReadTombstone(f)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ts.Instance != e.Name() {
				errs = append(errs, fmt.Errorf("tombstone %s: instance %q filed under the directory of %q; move it back to the directory of its instance", f, ts.Instance, e.Name()))
				continue
			}
			if !inQuarantine(ts.State) || (app != "" && ts.App != app) {
				continue
			}
			out = append(out, Quarantine{Tombstone: ts, TombstonePath: f, PurgeDue: !now.Before(ts.PurgeAfter)})
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
