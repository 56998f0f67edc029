package softdelete

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// retentionOf is the record a deletion's quarantine keeps of itself.
func retentionOf(t *Tombstone) kind.Retention {
	return kind.Retention{Deletion: t.ID, DeletedAt: t.DeletedAt.UTC(), PurgeAfter: t.PurgeAfter.UTC()}
}

// keepRetention records the deletion's retention with the quarantine of
// move m, where the quarantine itself lives: a file in the deletion's
// trash entry for the paths a kind moves into a trash directory, the
// kind's own record (RetentionKeeper) for a renamed database. Purge then
// does not rest on the tombstone alone (FINDINGS-4 #4).
func keepRetention(ctx context.Context, env kind.Env, k kind.Kind, t *Tombstone, m QuarantineMove) error {
	r := retentionOf(t)
	if k.TrashNames(m.move()) != nil {
		return writeRetentionFile(filepath.Dir(m.To), r)
	}
	if rk, ok := k.(kind.RetentionKeeper); ok {
		return rk.KeepRetention(ctx, env, m.move(), r)
	}
	return nil
}

// writeRetentionFile writes the record into the trash entry dir, through
// an os.Root (no link followed out of it), atomically.
func writeRetentionFile(dir string, r kind.Retention) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("record the retention in %s: %w", dir, err)
	}
	defer root.Close()
	tmp := kind.RetentionFile + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("record the retention in %s: %w", dir, err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, kind.RetentionFile)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("record the retention in %s: %w", dir, err)
	}
	if d, err := root.Open("."); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// readRetentionFile reads the record of a trash entry dir; ok is false
// when it keeps none.
func readRetentionFile(dir string) (r kind.Retention, ok bool, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return r, false, nil
		}
		return r, false, err
	}
	defer root.Close()
	f, err := root.OpenFile(kind.RetentionFile, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return r, false, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, false, fmt.Errorf("%s: %w", filepath.Join(dir, kind.RetentionFile), err)
	}
	return r, true, nil
}

// RetentionConflictError is a quarantine whose tombstone says its
// retention is over while the quarantine's own record says it is not.
type RetentionConflictError struct {
	Deletion        string
	TombstonePath   string
	TombstoneAfter  time.Time
	TombstoneAt     time.Time
	Where           string // the quarantine's own record
	Own             kind.Retention
	DeletionDiffers bool
}

func (e *RetentionConflictError) Error() string {
	if e.DeletionDiffers {
		return fmt.Sprintf("the tombstone %s is of deletion %s, but the quarantine's own record (%s) is of deletion %s: they disagree; nothing of it was removed",
			e.TombstonePath, e.Deletion, e.Where, e.Own.Deletion)
	}
	return fmt.Sprintf("the tombstone %s says deletion %s (deleted %s) may be purged after %s, but the quarantine's own record (%s) says deleted %s, purge after %s: they disagree, and purge removes a quarantine only when both say its retention is over; nothing of it was removed",
		e.TombstonePath, e.Deletion, e.TombstoneAt.UTC().Format(time.RFC3339), e.TombstoneAfter.UTC().Format(time.RFC3339),
		e.Where, e.Own.DeletedAt.UTC().Format(time.RFC3339), e.Own.PurgeAfter.UTC().Format(time.RFC3339))
}

// Hint tells the operator what to do.
func (e *RetentionConflictError) Hint() string {
	if e.DeletionDiffers {
		return "the tombstone or the quarantine was copied or edited: compare them by hand; purge will not remove this quarantine while they disagree"
	}
	return fmt.Sprintf("the tombstone was edited (or an older copy of it restored): wait until %s, when purge removes the quarantine by itself; to remove it earlier on purpose, set the tombstone's purge_after back to %s and remove the quarantine by hand",
		e.Own.PurgeAfter.UTC().Format(time.RFC3339), e.Own.PurgeAfter.UTC().Format(time.RFC3339))
}

// RetentionRecordMissingError is a quarantine whose deletion says it
// keeps its own retention records (its tombstone, or the manifest inside
// its verified archive) while a part of it has none: removed by hand. A
// missing record is a disagreement, not a quarantine of a release before
// records were kept (FINDINGS-6 #2).
type RetentionRecordMissingError struct {
	Deletion      string
	TombstonePath string
	// Said names what says records were written: the tombstone, or the
	// manifest of the archive.
	Said    string
	Missing []string // where each missing record belongs
}

func (e *RetentionRecordMissingError) Error() string {
	return fmt.Sprintf("%s says the quarantine of deletion %s keeps its own retention records, but %s ha%s none (removed by hand?): a missing record is no agreement, and purge removes a quarantine only when its tombstone and every record agree that its retention is over; nothing of it was removed",
		e.Said, e.Deletion, strings.Join(e.Missing, ", "), kind.Plural(len(e.Missing), "s", "ve"))
}

// Hint tells the operator what to do.
func (e *RetentionRecordMissingError) Hint() string {
	return "the quarantine's records were removed, and perhaps the tombstone " + e.TombstonePath + " edited: compare the tombstone's deleted_at and purge_after with the archive's manifest and the job that deleted it; purge will not remove this quarantine by itself while a record is missing: once you are sure its retention is over, remove it by hand"
}

// RetentionUnknownError is a quarantine part without a retention record
// whose deletion cannot be told from one of a release before records:
// its tombstone does not say records were written and its archive, which
// would, cannot be read.
type RetentionUnknownError struct {
	Deletion      string
	TombstonePath string
	Missing       []string
	Err           error
}

func (e *RetentionUnknownError) Error() string {
	return fmt.Sprintf("%s keep(s) no retention record and the tombstone %s does not say whether deletion %s wrote records; its archive, whose manifest says so, cannot be checked: %v; nothing of the quarantine was removed",
		strings.Join(e.Missing, ", "), e.TombstonePath, e.Deletion, e.Err)
}

func (e *RetentionUnknownError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *RetentionUnknownError) Hint() string {
	return "make the deletion's archive readable again (or give the options to decrypt it), then run the purge again; if the archive is lost for good, remove the quarantine by hand once you are sure its retention is over"
}

// recordsPromised tells whether deletion ts's quarantine keeps its own
// retention records: its tombstone says so (retention_records), or else
// the manifest inside its archive, verified against its sidecar (and the
// tombstone's archive_sha256), does. The archive is looked for by the
// deletion's id too, so that a tombstone whose archive_path was blanked
// does not pass for an archive-less one (a forced restore's moves aside
// of a release before records). said names what says so; err when it
// cannot be told.
func recordsPromised(ctx context.Context, ts *Tombstone) (promised bool, said string, err error) {
	if ts.RetentionRecords {
		return true, "the tombstone " + ts.Path + " (retention_records)", nil
	}
	if ts.st == nil {
		return false, "", fmt.Errorf("tombstone %s: not bound to a store", ts.Path)
	}
	key := ts.archiveKey()
	if key == "" {
		key = ts.shelf().key(ts.ID + archiveExt)
	}
	if _, err := ts.st.Stat(ctx, key); err != nil {
		if ts.archiveKey() == "" && (errors.Is(err, store.ErrNotExist) || errors.Is(err, fs.ErrNotExist)) {
			return false, "", nil // no archive, none named: moves aside by force of an earlier release
		}
		return false, "", fmt.Errorf("archive %s: %w", ts.st.Location(key), err)
	}
	m, sum, err := archive.Check(ctx, ts.st, key)
	if err != nil {
		return false, "", err // names the archive
	}
	if m.ID != ts.ID {
		return false, "", fmt.Errorf("archive %s is of deletion %s, not %s", ts.st.Location(key), m.ID, ts.ID)
	}
	if ts.ArchiveSHA256 != "" && sum != ts.ArchiveSHA256 {
		return false, "", fmt.Errorf("archive %s has sha256 %s, its tombstone says %s", ts.st.Location(key), sum, ts.ArchiveSHA256)
	}
	if m.RetentionRecords {
		return true, "the manifest of archive " + ts.st.Location(key), nil
	}
	return false, "", nil
}

// purgeMarker is a kind whose purge marks its quarantine as being purged
// in place of its retention record (the mysql kind: the schema's
// comment).
type purgeMarker interface {
	PurgeMarked(ctx context.Context, env kind.Env, m kind.Move) (bool, error)
}

// ownRetention is what checkOwnRetention found of a quarantine's records.
type ownRetention struct {
	// missing lists the parts (where their record belongs) that keep
	// none.
	missing []string
	// finishing lists the parts of an interrupted purge, renamed to their
	// purging name by the purge that checked them, whose record is gone
	// with part of their content.
	finishing []string
	// bare lists the parts whose kind keeps no record at all (neither a
	// trash entry nor a RetentionKeeper): the manifest inside the
	// deletion's archive must confirm their retention (confirmBare).
	bare []string
}

// checkOwnRetention reads the own record of every part of deletion ts's
// quarantine still there and compares it with the tombstone: a conflict
// when one is of another deletion or says its retention is not over at
// now. Parts without a record are listed (whether that is a disagreement
// is recordsPromised's to say).
func checkOwnRetention(ctx context.Context, env kind.Env, now time.Time, ts *Tombstone, entryOf map[string]*trashEntry, gone map[string]bool) (own ownRetention, conflict error) {
	seen := map[*trashEntry]bool{}
	for _, m := range ts.Components {
		if gone[m.Component] {
			continue
		}
		var (
			r       kind.Retention
			ok      bool
			where   string
			err     error
			purging bool
		)
		if e := entryOf[m.Component]; e != nil {
			if seen[e] {
				continue
			}
			seen[e] = true
			dir := ""
			switch {
			case e.intact:
				dir = e.intactPath()
			case e.purging:
				dir, purging = e.purgingPath(), true
			default:
				continue
			}
			where = filepath.Join(dir, kind.RetentionFile)
			r, ok, err = readRetentionFile(dir)
		} else {
			k, kerr := kindOf(m.Type)
			if kerr != nil {
				return own, kerr
			}
			rk, isKeeper := k.(kind.RetentionKeeper)
			if !isKeeper {
				own.bare = append(own.bare, m.To) // a kind that keeps no record
				continue
			}
			r, ok, where, err = rk.Retention(ctx, env, m.move())
			if where == "" {
				where = m.To
			}
			// A purge's mark that replaces the record (a MariaDB
			// schema's comment): the purge that marked it checked it.
			if pm, isMarker := k.(purgeMarker); isMarker && err == nil && !ok && ts.State == StatePurging {
				purging, err = pm.PurgeMarked(ctx, env, m.move())
			}
			// No record because the part itself is gone now: the DROP of a
			// killed purge goes on in the server after its client died,
			// and may commit between the purge's first look (gone) and
			// this read. Gone is no disagreement (PurgeCheck changes
			// nothing).
			if err == nil && !ok && !purging {
				if g, gerr := k.PurgeCheck(ctx, env, m.move()); gerr == nil && g {
					continue
				}
			}
		}
		if err != nil {
			return own, fmt.Errorf("read the retention record of %s: %w", m.To, err)
		}
		if !ok {
			if purging && ts.State == StatePurging {
				own.finishing = append(own.finishing, where)
			} else {
				own.missing = append(own.missing, where)
			}
			continue
		}
		c := &RetentionConflictError{Deletion: ts.ID, TombstonePath: ts.Path, TombstoneAfter: ts.PurgeAfter, TombstoneAt: ts.DeletedAt, Where: where, Own: r}
		if r.Deletion != ts.ID {
			c.DeletionDiffers = true
			return own, c
		}
		if now.Before(r.PurgeAfter) {
			return own, c
		}
	}
	return own, nil
}
