package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Retention is what keeps an object from removal by the store itself (S3
// Object Lock): a retention mode and date, a legal hold.
type Retention struct {
	// Mode is "GOVERNANCE", "COMPLIANCE" or "" (none).
	Mode string `json:"mode,omitempty"`
	// Until is the retain-until date (zero: none).
	Until time.Time `json:"until,omitzero"`
	// LegalHold is on until someone lifts it.
	LegalHold bool `json:"legal_hold,omitempty"`
}

// Locked reports whether the store refuses to remove the object at now.
func (r Retention) Locked(now time.Time) bool {
	return r.LegalHold || (r.Mode != "" && now.Before(r.Until))
}

// String says what keeps the object.
func (r Retention) String() string {
	var parts []string
	if r.Mode != "" && !r.Until.IsZero() {
		parts = append(parts, fmt.Sprintf("%s retention until %s", strings.ToLower(r.Mode), r.Until.UTC().Format(time.RFC3339)))
	}
	if r.LegalHold {
		parts = append(parts, "a legal hold (kept until it is lifted)")
	}
	if len(parts) == 0 {
		return "no retention"
	}
	return strings.Join(parts, " and ")
}

// Retainer is a store that can make the store itself refuse to remove an
// object before a date (S3 Object Lock).
type Retainer interface {
	Store
	// CheckObjectLock returns an error with a Hint unless objects can be
	// locked in this store.
	CheckObjectLock(ctx context.Context) error
	// Retain sets key's retention: mode "governance" or "compliance"
	// until the date ("" for none), and a legal hold when legalHold.
	Retain(ctx context.Context, key, mode string, until time.Time, legalHold bool) error
	// Retention reads what keeps key.
	Retention(ctx context.Context, key string) (Retention, error)
}
