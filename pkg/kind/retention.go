package kind

import (
	"context"
	"time"
)

// RetentionFile is the file, inside a deletion's trash entry
// (<parent>/.fleetsafe-trash/<id>/), that keeps the deletion's
// Retention beside the quarantined paths: purge does not take the
// retention from the tombstone alone. Its name is fleetsafe's own (no
// layout may claim a .fleetsafe- element), so it is never a component.
const RetentionFile = ".fleetsafe-retention"

// Retention is what a quarantine keeps of its own deletion: which one,
// when, and when its retention ends. Purge removes a quarantine only when
// its tombstone and this record agree that retention is over.
type Retention struct {
	Deletion   string    `json:"deletion"`
	DeletedAt  time.Time `json:"deleted_at"`
	PurgeAfter time.Time `json:"purge_after"`
}

// RetentionKeeper is a kind whose quarantine is not in a trash entry (a
// renamed database) and keeps its Retention itself, with the quarantine
// (a database's comment, a schema's comment).
type RetentionKeeper interface {
	// KeepRetention records r with the quarantine m.To. Recording it
	// again is no error.
	KeepRetention(ctx context.Context, env Env, m Move, r Retention) error
	// Retention reads the record of the quarantine m.To (or of its
	// purging name). ok is false when the quarantine keeps none (made by
	// a release before records, or not found); where names the record
	// for messages.
	Retention(ctx context.Context, env Env, m Move) (r Retention, ok bool, where string, err error)
}
