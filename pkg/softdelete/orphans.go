package softdelete

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Orphan is an object of the store that describes an archive the store
// does not hold: the RESTORE.md or the sha256 sidecar of an archive whose
// deletion was killed or failed before the archive was complete (written
// by a version that stored them before the archive, or left by a clean-up
// that could not remove them). A by-hand reader would be sent to an
// archive that does not exist, so every run that takes the instance's
// lock (soft delete, restore, purge) removes them, or, when the store
// keeps them locked (Object Lock), puts a warning in the runbook's place.
type Orphan struct {
	Instance string `json:"instance"`
	// Object is the orphan itself (a path or a URL).
	Object string `json:"object"`
	// Archive is the archive it describes, which the store does not hold.
	Archive string `json:"archive"`
	// Action is what this run did: removed; marked (a RESTORE.md the
	// store keeps locked, replaced by a warning as its newest version);
	// left (it could not be removed: Error says why); would_remove
	// (check mode).
	Action string `json:"action"`
	Error  string `json:"error,omitempty"`

	changed bool
}

func (o Orphan) String() string {
	s := fmt.Sprintf("%s describes the archive %s, which the store does not hold (a deletion was interrupted before its archive was complete): ", o.Object, o.Archive)
	switch o.Action {
	case "removed":
		return s + "removed"
	case "marked":
		return s + "the store keeps it locked; a warning now stands in its place as its newest version"
	case "would_remove":
		return s + "it would be removed (check mode)"
	}
	return s + "it could not be removed (" + o.Error + "); do not follow it"
}

// orphanWarning is what stands in place of an orphan RESTORE.md that the
// store keeps locked.
func orphanWarning(o Orphan, now time.Time) []byte {
	return []byte(fmt.Sprintf(orphanWarningTitle+"\n"+
		"This RESTORE.md was written for the archive `%s`, which this store does not hold: "+
		"the deletion that wrote it was interrupted before its archive was complete, and nothing was moved by it. "+
		"fleetsafe found it on %s and put this warning in its place (the store keeps the older version locked). "+
		"Do not follow the older version. Look for the instance's other archives, each with its own RESTORE.md, "+
		"beside this object.\n", kind.OneLine(o.Archive), now.UTC().Format(time.RFC3339)))
}

// sweepOrphans finds, in one instance's folder, the RESTORE.md and
// sidecar objects whose archive is missing, and removes or marks them
// (only reports them in check mode). The caller holds the instance's
// lock, so no archive of it is being written. A failure to remove one is
// reported in its Orphan, not returned: the run's own work goes on.
func sweepOrphans(ctx context.Context, sh shelf, checkMode bool) ([]Orphan, error) {
	objs, err := sh.st.List(ctx, sh.name+"/")
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, o := range objs {
		have[o.Key] = true
	}
	var out []Orphan
	for _, o := range objs {
		var arch string
		runbook := false
		switch {
		case strings.HasSuffix(o.Key, archiveExt+archive.RunbookSuffix):
			arch, runbook = strings.TrimSuffix(o.Key, archive.RunbookSuffix), true
		case strings.HasSuffix(o.Key, archiveExt+sidecar.Suffix):
			arch = strings.TrimSuffix(o.Key, sidecar.Suffix)
		default:
			continue
		}
		if have[arch] || strings.Contains(strings.TrimPrefix(arch, sh.name+"/"), "/") {
			continue
		}
		if _, err := sh.st.Stat(ctx, arch); err == nil || !errors.Is(err, store.ErrNotExist) {
			continue // there after all (listed late), or unknown: not an orphan we can vouch for
		}
		or := Orphan{Instance: sh.name, Object: sh.st.Location(o.Key), Archive: sh.st.Location(arch), Action: "would_remove"}
		marked := runbook && isOrphanWarning(ctx, sh.st, o.Key)
		if marked {
			or.Action = "marked"
		}
		if !checkMode {
			or.Action = "removed"
			if err := sh.st.Remove(ctx, o.Key); err != nil && !errors.Is(err, store.ErrNotExist) {
				or.Action, or.Error = "left", err.Error()
				if marked {
					or.Action, or.Error = "marked", "" // an earlier run put the warning there
				} else if runbook {
					if perr := sh.st.Put(ctx, o.Key, orphanWarning(or, time.Now())); perr == nil {
						or.Action = "marked"
					} else {
						or.Error += "; putting a warning in its place also failed: " + perr.Error()
					}
				}
			}
		}
		// In check mode: what a real run would change.
		or.changed = or.Action == "removed" || or.Action == "would_remove" || (or.Action == "marked" && !marked)
		out = append(out, or)
	}
	return out, nil
}

// orphanWarningTitle starts the warning that stands in place of a locked
// orphan RESTORE.md.
const orphanWarningTitle = "# WARNING: no archive here\n"

// isOrphanWarning reports whether the object under key is already the
// warning that stands in place of an orphan RESTORE.md.
func isOrphanWarning(ctx context.Context, st store.Store, key string) bool {
	rc, err := st.Open(ctx, key)
	if err != nil {
		return false
	}
	defer rc.Close()
	head := make([]byte, len(orphanWarningTitle))
	if _, err := io.ReadFull(rc, head); err != nil {
		return false
	}
	return string(head) == orphanWarningTitle
}

// orphansChanged reports whether a sweep changed the store (in check
// mode: would change it).
func orphansChanged(os []Orphan) bool { return OrphansChanged(os) }

// OrphansChanged reports whether the orphans a run reports were changed
// (in check mode: would be).
func OrphansChanged(os []Orphan) bool {
	for _, o := range os {
		if o.changed {
			return true
		}
	}
	return false
}
