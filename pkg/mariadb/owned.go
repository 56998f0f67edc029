package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// NotOursError is a database named like a quarantine that carries no
// proof that fleetsafe made it for the deletion of the database named:
// purge never drops it.
type NotOursError struct {
	Database, From, Why string
}

func (e *NotOursError) Error() string {
	return fmt.Sprintf("database %q is not a quarantine fleetsafe made of %q: %s", e.Database, e.From, e.Why)
}

// Hint tells the operator what to do.
func (e *NotOursError) Hint() string {
	return "nothing was dropped; check who made this database and the tombstone that points at it (it may be forged or copied); drop it by hand if it is to go"
}

// CheckOwned returns nil when quarantine is one fleetsafe made by moving
// database from into it: its kept definitions (checked against their
// sha256) are those of from, or it is marked as being purged by an
// earlier purge (whose DROP may have removed the definitions already),
// or it holds no table at all (a quarantine stopped before anything was
// kept or moved: nothing in it can be lost). Otherwise a *NotOursError
// naming it.
func CheckOwned(ctx context.Context, db *sql.DB, quarantine, from string) error {
	if err := checkOwnName(quarantine); err != nil {
		return err
	}
	if p, err := Purging(ctx, db, quarantine); err != nil {
		return err
	} else if p {
		return nil
	}
	kept, err := keptDefinitions(ctx, db, quarantine)
	if err != nil {
		return &NotOursError{Database: quarantine, From: from, Why: err.Error()}
	}
	if kept != nil {
		if kept.Database != from {
			return &NotOursError{Database: quarantine, From: from, Why: fmt.Sprintf("its kept definitions are those of %q", kept.Database)}
		}
		return nil
	}
	tables, err := Tables(ctx, db, quarantine)
	if err != nil {
		return err
	}
	if len(tables) > 0 {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.Name
		}
		return &NotOursError{Database: quarantine, From: from,
			Why: fmt.Sprintf("it holds tables (%s) but no %s, which every quarantine fleetsafe makes keeps", strings.Join(names, ", "), DefinitionsTable)}
	}
	return nil
}
