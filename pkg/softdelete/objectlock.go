package softdelete

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// ObjectLockModes are the values of Request.ObjectLock besides "".
var ObjectLockModes = []string{"governance", "compliance"}

// checkObjectLock refuses, before anything changes, a deletion that asks
// for an archive the store keeps locked (object_lock, legal_hold) when
// the store cannot: not a store with Object Lock, a bucket without it
// enabled, or a retention of 0 days (nothing to lock until).
func checkObjectLock(ctx context.Context, req Request, st store.Store) error {
	if req.ObjectLock == "" && !req.LegalHold {
		return nil
	}
	switch req.ObjectLock {
	case "", "governance", "compliance":
	default:
		return &RefusedError{Name: req.Name, Reason: fmt.Sprintf("object_lock %q: want governance or compliance", req.ObjectLock),
			Advice: "governance: only those allowed to bypass it may remove the archive early; compliance: nobody can"}
	}
	if req.ObjectLock != "" && req.RetentionDays < 1 {
		return &RefusedError{Name: req.Name, Reason: fmt.Sprintf("object_lock %s with retention_days %d: the archive would be locked until now", req.ObjectLock, req.RetentionDays),
			Advice: "give retention_days of 1 or more: the archive is locked until its purge_after"}
	}
	r, ok := st.(store.Retainer)
	if !ok {
		return &RefusedError{Name: req.Name, Reason: fmt.Sprintf("object_lock and legal_hold need an archive store that can lock objects; %s cannot", st.Location("")),
			Advice: "give archive_store: s3://bucket/prefix, a bucket with Object Lock enabled"}
	}
	if err := r.CheckObjectLock(ctx); err != nil {
		advice := ""
		if h, ok := err.(interface{ Hint() string }); ok {
			advice = h.Hint()
		}
		return &RefusedError{Name: req.Name, Reason: "object_lock or legal_hold asked, but " + err.Error(), Advice: advice}
	}
	return nil
}

// lockArchive has the store keep the verified archive, its sidecar (and
// RESTORE.md beside it)
// until purge_after (object_lock) and while a legal hold is on
// (legal_hold), then reads the archive's lock back from the store: what
// is reported is what the store keeps, not what was asked.
func lockArchive(ctx context.Context, req Request, sh shelf, ts *Tombstone) (*store.Retention, error) {
	if req.ObjectLock == "" && !req.LegalHold {
		return nil, nil
	}
	r := sh.st.(store.Retainer) // checkObjectLock made sure
	key := ts.archiveKey()
	keys := []string{key, key + sidecar.Suffix}
	if _, err := sh.st.Stat(ctx, key+archive.RunbookSuffix); err == nil {
		keys = append(keys, key+archive.RunbookSuffix) // RESTORE.md beside it, in object storage
	}
	for _, k := range keys {
		if err := r.Retain(ctx, k, req.ObjectLock, ts.PurgeAfter, req.LegalHold); err != nil {
			return nil, fmt.Errorf("lock the archive in the store: %w", err)
		}
	}
	got, err := r.Retention(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read back the archive's lock: %w", err)
	}
	if !got.Locked(time.Now()) || (req.LegalHold && !got.LegalHold) || (req.ObjectLock != "" && got.Until.Before(ts.PurgeAfter.Truncate(time.Second))) {
		return nil, fmt.Errorf("the store reports %s for %s, not what was asked (object_lock %q until %s, legal_hold %v)",
			got, sh.st.Location(key), req.ObjectLock, ts.PurgeAfter.Format(time.RFC3339), req.LegalHold)
	}
	return &got, nil
}

// storeLock returns what keeps key in a store that locks objects, when
// something does at now.
func storeLock(ctx context.Context, st store.Store, key string, now time.Time) (store.Retention, bool) {
	r, ok := st.(store.Retainer)
	if !ok {
		return store.Retention{}, false
	}
	got, err := r.Retention(ctx, key)
	if err != nil || !got.Locked(now) {
		return store.Retention{}, false
	}
	return got, true
}
