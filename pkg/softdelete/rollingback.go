package softdelete

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// finishRollBack completes a deletion left rolling_back (killed while
// moving its components back after late changes): it moves back what is
// still in quarantine, removes the archive (which missed the late
// changes), marks the deletion abandoned and returns what it found of the
// archive, for the result. by names the run that settles it.
func finishRollBack(ctx context.Context, opts Request, ts *Tombstone, by string) (string, error) {
	if err := moveAllBack(ctx, opts, ts); err != nil {
		return "", err
	}
	found := "it had no archive"
	if f := ts.archiveFile(); f != "" {
		_, err := ts.st.Stat(ctx, ts.archiveKey())
		switch {
		case errors.Is(err, store.ErrNotExist):
			found = "its archive " + ts.ArchivePath + " was already gone"
		case err != nil:
			found = fmt.Sprintf("its archive %s could not be looked at (%v) and was removed", ts.ArchivePath, err)
		default:
			found = "its archive " + ts.ArchivePath + ", which missed the late changes, was removed"
		}
		if err := ts.removeArchive(ctx); err != nil {
			found = fmt.Sprintf("its archive %s could not be removed (%v)", ts.ArchivePath, err)
		}
	}
	ts.State = StateAbandoned
	note := "moved back from quarantine by " + by + " after an interrupted rollback; " + found
	if ts.Note != "" && !strings.Contains(ts.Note, note) {
		note = ts.Note + "; " + note
	}
	ts.Note = note
	if err := ts.write(); err != nil {
		return found, fmt.Errorf("every component of deletion %s is back in place but its tombstone %s could not be marked abandoned: %w", ts.ID, ts.Path, err)
	}
	return found, nil
}

// settleRollingBack finishes, before a restore chooses its sources, every
// deletion of app's instance left rolling_back: its quarantine holds the
// late changes its archive missed, so it is never a source; its
// components go back where they were, as the next soft delete would put
// them. It returns the notes for the result.
func settleRollingBack(ctx context.Context, sh shelf, app string, req RestoreRequest) ([]string, error) {
	all, err := sh.tombstones(ctx)
	if err != nil {
		return nil, err
	}
	var notes []string
	for _, ts := range all {
		if !ofApp(ts, app) || ts.State != StateRollingBack {
			continue
		}
		if req.CheckMode {
			notes = append(notes, fmt.Sprintf("check mode: the deletion %s of %s was rolling back after late changes (tombstone %s): a restore would first move its components back into place from its quarantine, mark it abandoned and remove its archive (which missed those changes), then restore what is still missing",
				ts.ID, ts.Instance, ts.Path))
			continue
		}
		found, err := finishRollBack(ctx, Request{Name: req.Name, Options: req.Options}, ts, "a restore")
		if err != nil {
			return notes, &RestoreFailedError{Name: req.Name,
				Err:   fmt.Errorf("the deletion %s of %s was rolling back after late changes (tombstone %s) and could not be finished: %w", ts.ID, ts.Instance, ts.Path, err),
				State: "the components named were not moved back; those that were are in place; the tombstone still says rolling_back (resolve a component present in both places by hand: compare them and keep one), then run the restore again, which finishes moving back"}
		}
		notes = append(notes, fmt.Sprintf("the deletion %s of %s was rolling back after late changes (%s); its components were moved back into place from its quarantine and it was marked abandoned; %s",
			ts.ID, ts.Instance, strings.TrimPrefix(ts.Note, "late changes: "), found))
	}
	return notes, nil
}
