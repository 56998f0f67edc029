package softdelete

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// spareTitle starts the note put on top of the RESTORE.md of a spare copy:
// the complete, verified archive of a deletion that was interrupted before
// anything moved. Read by hand, that runbook would otherwise look like
// the runbook of a real deletion, and send its reader to restore an
// instance that was never deleted by it.
const spareTitle = "# NOTE: a spare copy, not a deletion\n"

// markSpareRunbook puts the spare-copy note on top of the RESTORE.md of
// the archive under archiveKey (as a new version where the store keeps
// versions), once: a runbook that already starts with the note, or no
// runbook at all, is left as it is. It reports whether it wrote.
func markSpareRunbook(ctx context.Context, st store.Store, archiveKey, instance, id string, when time.Time) (bool, error) {
	key := archiveKey + archive.RunbookSuffix
	rc, err := st.Open(ctx, key)
	if errors.Is(err, store.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	body, err := io.ReadAll(io.LimitReader(rc, 4<<20))
	rc.Close()
	if err != nil {
		return false, err
	}
	if bytes.HasPrefix(body, []byte(spareTitle)) {
		return false, nil
	}
	note := fmt.Sprintf(spareTitle+"\n"+
		"The deletion %s of %s that wrote this archive was interrupted after its archive was written and verified, "+
		"before anything was moved: %s was NOT deleted by it and stayed in place. fleetsafe recorded the attempt as "+
		"abandoned on %s. The archive is a complete, verified copy of the instance as it was then; restore from it only "+
		"to go back to that state, and only if the instance is missing. Its runbook, as written then, follows.\n\n---\n\n",
		kind.OneLine(id), kind.OneLine(instance), kind.OneLine(instance), when.UTC().Format(time.RFC3339))
	if err := st.Put(ctx, key, append([]byte(note), body...)); err != nil {
		return false, err
	}
	return true, nil
}
