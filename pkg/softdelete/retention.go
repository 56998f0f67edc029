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
	"syscall"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
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

// checkOwnRetention reads the own record of every part of deletion ts's
// quarantine still there and compares it with the tombstone: a conflict
// when one is of another deletion or says its retention is not over at
// now. legacy names the parts that keep no record (quarantined by an
// earlier release), purged on the tombstone's word as before.
func checkOwnRetention(ctx context.Context, env kind.Env, now time.Time, ts *Tombstone, entryOf map[string]*trashEntry, gone map[string]bool) (legacy []string, conflict error) {
	seen := map[*trashEntry]bool{}
	for _, m := range ts.Components {
		if gone[m.Component] {
			continue
		}
		var (
			r     kind.Retention
			ok    bool
			where string
			err   error
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
				dir = e.purgingPath()
			default:
				continue
			}
			where = filepath.Join(dir, kind.RetentionFile)
			r, ok, err = readRetentionFile(dir)
		} else {
			k, kerr := kindOf(m.Type)
			if kerr != nil {
				return nil, kerr
			}
			rk, isKeeper := k.(kind.RetentionKeeper)
			if !isKeeper {
				continue // a kind that keeps no record: the tombstone alone
			}
			r, ok, where, err = rk.Retention(ctx, env, m.move())
			if where == "" {
				where = m.To
			}
		}
		if err != nil {
			return nil, fmt.Errorf("read the retention record of %s: %w", m.To, err)
		}
		if !ok {
			legacy = append(legacy, m.To)
			continue
		}
		c := &RetentionConflictError{Deletion: ts.ID, TombstonePath: ts.Path, TombstoneAfter: ts.PurgeAfter, TombstoneAt: ts.DeletedAt, Where: where, Own: r}
		if r.Deletion != ts.ID {
			c.DeletionDiffers = true
			return nil, c
		}
		if now.Before(r.PurgeAfter) {
			return nil, c
		}
	}
	return legacy, nil
}
