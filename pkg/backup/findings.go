// Package backup proves that backups are really there: for every instance
// and every component, a backup is present, its own (never another
// instance's), fresh, not empty, not shrunk, matches its checksum, is
// structurally complete to its end, holds data when the database does, and
// (on request) restores. Each problem is a typed finding with the file, the
// figure measured, the limit and a hint for the operator.
package backup

import (
	"fmt"
	"strings"
	"time"
)

// Check names, as they appear in results.
const (
	CheckCoverage = "coverage"
	CheckPresent  = "present"
	CheckFresh    = "fresh"
	CheckSize     = "size"
	CheckShrink   = "shrink"
	CheckChecksum = "checksum"
	CheckFormat   = "format"
	CheckRestore  = "restore"
	// CheckOwner fails when a file could be the backup of more than one
	// instance, or when a dump names another instance's database.
	CheckOwner = "owner"
)

// Statuses of checks and instances, from best to worst.
const (
	StatusOK      = "ok"
	StatusSkipped = "skipped"
	StatusWarning = "warning"
	StatusFailed  = "failed"
)

func rank(s string) int {
	switch s {
	case StatusWarning:
		return 1
	case StatusFailed:
		return 2
	}
	return 0
}

// Finding is a problem found by a check. Every finding says what to do.
type Finding interface {
	error
	Hint() string
}

// UncoveredError is a component with neither a backup rule nor
// `backup: false`.
type UncoveredError struct{ Component string }

func (e *UncoveredError) Error() string {
	return fmt.Sprintf("component %s has no backup rule and is not marked backup: false", e.Component)
}

// Hint tells the operator what to do.
func (e *UncoveredError) Hint() string {
	return "add a backups: rule for it, or say backup: false on the component if it is not backed up on purpose"
}

// MissingError is a rule that matches no backup for an instance.
type MissingError struct {
	Pattern string
	// Rule names the layout rule; Note adds what was left out (files
	// dated in the future).
	Rule, Note string
}

func (e *MissingError) Error() string {
	msg := fmt.Sprintf("no backup matches %s", e.Pattern)
	if e.Rule != "" {
		msg += " (" + e.Rule + ")"
	}
	if e.Note != "" {
		msg += "; " + e.Note
	}
	return msg
}

// Hint tells the operator what to do.
func (e *MissingError) Hint() string {
	return "check the backup job of this instance: it wrote nothing where the layout expects it"
}

// StaleError is a newest backup older than max_age.
type StaleError struct {
	Path string
	Age  time.Duration
	Max  time.Duration
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("%s is %s old, more than max_age %s", e.Path, e.Age.Round(time.Minute), e.Max)
}

// Hint tells the operator what to do.
func (e *StaleError) Hint() string {
	return "the backup job has not run (or not succeeded) since; look at its logs"
}

// TooSmallError is a newest backup below min_size (or empty).
type TooSmallError struct {
	Path string
	Size int64
	Min  int64
}

func (e *TooSmallError) Error() string {
	if e.Size == 0 {
		return fmt.Sprintf("%s is empty", e.Path)
	}
	return fmt.Sprintf("%s is %d bytes, less than min_size %d", e.Path, e.Size, e.Min)
}

// Hint tells the operator what to do.
func (e *TooSmallError) Hint() string {
	return "the backup job wrote a file but not the data; look at its logs"
}

// ShrinkError is a newest backup much smaller than the one before.
type ShrinkError struct {
	Path, Previous     string
	Size, PreviousSize int64
	Min                float64
}

func (e *ShrinkError) Error() string {
	return fmt.Sprintf("%s is %d bytes, %.0f%% of the previous %s (%d bytes); max_shrink allows down to %.0f%%",
		e.Path, e.Size, 100*float64(e.Size)/float64(max(e.PreviousSize, 1)), e.Previous, e.PreviousSize, 100*e.Min)
}

// Hint tells the operator what to do.
func (e *ShrinkError) Hint() string {
	return "part of the data may no longer be backed up; compare the two backups"
}

// ChecksumError is a backup whose sha256 does not match its sidecar, or a
// missing or malformed sidecar.
type ChecksumError struct {
	Path, Want, Got string
	Msg             string
}

func (e *ChecksumError) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("%s: %s", e.Path, e.Msg)
	}
	return fmt.Sprintf("%s has sha256 %s, its sidecar says %s", e.Path, e.Got, e.Want)
}

// Hint tells the operator what to do.
func (e *ChecksumError) Hint() string {
	return "the backup was altered or damaged after it was written; take a new one"
}

// FormatError is a backup that is not complete to its end.
type FormatError struct {
	Path   string
	Format string
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%s is not a complete %s backup: %s", e.Path, e.Format, e.Msg)
}

// Hint tells the operator what to do.
func (e *FormatError) Hint() string {
	return "the backup is truncated or corrupted and cannot be fully restored; take a new one and check the job's disk space"
}

// RestoreError is a test restore that failed.
type RestoreError struct {
	Path string
	Msg  string
}

func (e *RestoreError) Error() string { return fmt.Sprintf("test restore of %s: %s", e.Path, e.Msg) }

// Hint tells the operator what to do.
func (e *RestoreError) Hint() string {
	return "this backup does not restore; take a new one and restore it by hand to see why"
}

// AmbiguousError is a backup file that the rule could credit to more than
// one known instance name; it is credited to none of them.
type AmbiguousError struct {
	Path  string
	Rule  string
	Names []string
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%s could be the backup of %s under %s; it is credited to none of them",
		e.Path, strings.Join(e.Names, " and "), e.Rule)
}

// Hint tells the operator what to do.
func (e *AmbiguousError) Hint() string {
	return "the rule lets one name run into the part matched by the wildcard; give each instance its own directory " +
		"({name}/...) or put right after {name} a character that names cannot contain, and move or rename the file"
}

// LinkedError is a backup file reached, below the rule's fixed directory,
// through a symbolic link (the file itself, or the instance's backup
// directory): what it leads to is not in this instance's backup location,
// so it is credited to no instance.
type LinkedError struct {
	Path string
	Link string // which element is a link, and to what
	Rule string
}

func (e *LinkedError) Error() string {
	return fmt.Sprintf("%s, matched by %s, is reached through a symbolic link (%s); a backup is credited only to the instance whose backup location really holds it, so it is credited to none",
		e.Path, e.Rule, e.Link)
}

// Hint tells the operator what to do.
func (e *LinkedError) Hint() string {
	return "store each instance's backups in its own location: replace the link by a real directory or file (a copy of this instance's own backup), or remove it"
}

// UnreadableError is a directory (or file) that could hold backups of the
// instance and cannot be read.
type UnreadableError struct {
	Dir  string
	Rule string
	Err  error
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("cannot read %s, where %s looks for backups: %v", e.Dir, e.Rule, e.Err)
}

// Unwrap returns the OS error.
func (e *UnreadableError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *UnreadableError) Hint() string {
	return "give the user running backup_verify read and search access to the directory (or run it with become)"
}

// FutureError is a backup dated in the future beyond the clock-skew
// tolerance: it never counts as fresh nor as the newest.
type FutureError struct {
	Path      string
	MTime     time.Time
	Now       time.Time
	Tolerance time.Duration
}

func (e *FutureError) Error() string {
	return fmt.Sprintf("%s is dated %s, %s in the future (tolerance %s); it is not counted as the newest backup",
		e.Path, e.MTime.UTC().Format(time.RFC3339), e.MTime.Sub(e.Now).Round(time.Second), e.Tolerance)
}

// Hint tells the operator what to do.
func (e *FutureError) Hint() string {
	return "fix the clock of the host that wrote it (or its mtime, touch -d); a future date would hide a stopped backup job forever"
}

// DatabaseMismatchError is a dump whose header names another database than
// the instance's.
type DatabaseMismatchError struct {
	Path string
	Rule string
	Want string
	Got  string
}

func (e *DatabaseMismatchError) Error() string {
	return fmt.Sprintf("%s (%s) is a dump of database %q, not of this instance's database %q", e.Path, e.Rule, e.Got, e.Want)
}

// Hint tells the operator what to do.
func (e *DatabaseMismatchError) Hint() string {
	return "the backup job dumps the wrong database into this instance's backups; fix the job and take a new dump"
}

// NoDataError is a dump without any table data while the database has
// rows (or the previous dump had data).
type NoDataError struct {
	Path string
	Rule string
	Why  string
}

func (e *NoDataError) Error() string {
	return fmt.Sprintf("%s (%s) holds no table data, but %s", e.Path, e.Rule, e.Why)
}

// Hint tells the operator what to do.
func (e *NoDataError) Hint() string {
	return "the job took a schema-only dump (--schema-only, -s) or dumped an empty copy; dump the data too"
}

// GoneError is a live database that disappeared (dropped, renamed or
// closed) during the run, typically because the instance is being deleted.
type GoneError struct {
	Path     string
	Database string
	// Why is what happened to it ("was dropped or renamed"), Cause what
	// explains it (a soft delete's tombstone), when known.
	Why, Cause string
}

func (e *GoneError) Error() string {
	cause := e.Cause
	if cause == "" {
		cause = "is the instance being deleted or renamed?"
	}
	return fmt.Sprintf("test restore of %s: restored, but the live database %s %s during the run (%s); rows not compared",
		e.Path, e.Database, e.Why, cause)
}

// Hint tells the operator what to do.
func (e *GoneError) Hint() string {
	return "the instance is being deleted or renamed; re-run backup_verify once that is over"
}
