package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// LockWait bounds how long RENAME TABLE waits for the metadata lock of a
// table that an open transaction holds, in seconds.
const LockWait = 10

// NotFoundError is a database that does not exist.
type NotFoundError struct{ Database string }

func (e *NotFoundError) Error() string { return fmt.Sprintf("database %q does not exist", e.Database) }

// Hint tells the operator what to do.
func (e *NotFoundError) Hint() string {
	return "check the name (SHOW DATABASES); a quarantined database has a name starting with fstrash_"
}

// NameError is a database name a step refuses: a system schema, one of
// fleetsafe's reserved prefixes where an instance's database is expected,
// or the reverse.
type NameError struct {
	Database, Why string
}

func (e *NameError) Error() string { return fmt.Sprintf("database %q: %s", e.Database, e.Why) }

// Hint tells the operator what to do.
func (e *NameError) Hint() string {
	return "fleetsafe moves only instances' databases into quarantine, and drops only databases of its reserved prefixes"
}

// TakenError is a database name already in use where a step would create
// it.
type TakenError struct {
	Database string
	Tables   []string
}

func (e *TakenError) Error() string {
	if len(e.Tables) > 0 {
		return fmt.Sprintf("database %q already exists and holds tables (%s)", e.Database, strings.Join(e.Tables, ", "))
	}
	return fmt.Sprintf("database %q already exists", e.Database)
}

// Hint tells the operator what to do.
func (e *TakenError) Hint() string {
	return "another database has this name: rename or drop it by hand, or restore under another name"
}

// StateError is a step that failed after moving something: it says where
// everything is.
type StateError struct {
	Step  string
	State string
	Err   error
}

func (e *StateError) Error() string {
	return fmt.Sprintf("%s: %v; state left: %s", e.Step, e.Err, e.State)
}

// Unwrap returns the cause.
func (e *StateError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *StateError) Hint() string {
	return "finish by hand from the state said, or run the step again once the cause is fixed: each step starts from where the last one stopped"
}

func checkInstanceName(name string) error {
	if err := ValidateName(name); err != nil {
		return &NameError{Database: name, Why: err.Error()}
	}
	if slices.Contains(SystemSchemas, strings.ToLower(name)) {
		return &NameError{Database: name, Why: "is one of the server's own schemas"}
	}
	if Reserved(name) {
		return &NameError{Database: name, Why: "has one of fleetsafe's reserved prefixes, so it is no instance's database"}
	}
	return nil
}

func checkOwnName(name string) error {
	if err := ValidateName(name); err != nil {
		return &NameError{Database: name, Why: err.Error()}
	}
	if !Reserved(name) {
		return &NameError{Database: name, Why: "does not start with one of fleetsafe's reserved prefixes"}
	}
	return nil
}

// Quarantine moves every table and sequence of database name into the
// database quarantine (a reserved name, such as fstrash_…) with a single
// RENAME TABLE, which the server runs atomically, then drops what is left
// of name: its views, routines and events, which RENAME TABLE cannot move.
// Triggers, which RENAME TABLE refuses to carry across databases, are
// dropped just before the move (and put back if the move fails).
//
// defs are name's definitions as ReadDefinitions gave them, which the
// caller has kept (in the archive, beside the dump) before calling: they
// are what Restore recreates. Quarantine refuses, before changing
// anything, when name holds an object defs lack (created since), and
// while clients are connected to name (*InUseError).
//
// An interrupted quarantine is finished by calling it again with the same
// defs: it creates quarantine only when missing, moves the tables still
// in name, and returns nil at once when name is gone and quarantine
// exists.
func Quarantine(ctx context.Context, db *sql.DB, name, quarantine string, defs *Definitions) error {
	if err := checkInstanceName(name); err != nil {
		return err
	}
	if err := checkOwnName(quarantine); err != nil {
		return err
	}
	if defs == nil || defs.Database != name {
		return fmt.Errorf("quarantine of %q: no definitions of this database (ReadDefinitions, kept by the caller, first)", name)
	}
	nameExists, err := Exists(ctx, db, name)
	if err != nil {
		return err
	}
	qExists, err := Exists(ctx, db, quarantine)
	if err != nil {
		return err
	}
	switch {
	case !nameExists && qExists:
		return nil // done before
	case !nameExists:
		return &NotFoundError{Database: name}
	}
	if err := RefuseIfUsed(ctx, db, name); err != nil {
		return err
	}
	cur, err := ReadDefinitions(ctx, db, name)
	if err != nil {
		return err
	}
	if extra := notIn(cur.Objects, defs.Objects); len(extra) > 0 {
		return fmt.Errorf("quarantine of %q: it holds %s, not in the definitions kept; read them again (and take the dump again) before moving it",
			name, strings.Join(extra, ", "))
	}
	tables, err := Tables(ctx, db, name)
	if err != nil {
		return err
	}
	if qExists {
		// An interrupted run: the tables already moved must not meet
		// tables of the same name.
		moved, err := Tables(ctx, db, quarantine)
		if err != nil {
			return err
		}
		for _, t := range tables {
			if movable(t) && slices.ContainsFunc(moved, func(m Table) bool { return m.Name == t.Name }) {
				return &TakenError{Database: quarantine, Tables: []string{t.Name}}
			}
		}
	}
	conn, err := session(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close()
	if !qExists {
		if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+QuoteIdent(quarantine)+" CHARACTER SET "+QuoteIdent(defs.Charset)+
			" COLLATE "+QuoteIdent(defs.Collation)); err != nil {
			return fmt.Errorf("create quarantine database %q: %w", quarantine, err)
		}
	}
	if err := testCrash("quarantine: created"); err != nil {
		return err
	}
	undo := func(cause error, step string) error {
		// Put the triggers back and drop the quarantine if empty; what
		// did not come back is said.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		var left []string
		if err := recreate(bctx, db, name, triggersOf(defs)); err != nil {
			left = append(left, fmt.Sprintf("triggers of %q not recreated (%v); they are in the definitions and the dump", name, err))
		}
		if ts, err := Tables(bctx, db, quarantine); err == nil && len(ts) == 0 {
			if _, err := conn.ExecContext(bctx, "DROP DATABASE "+QuoteIdent(quarantine)); err != nil {
				left = append(left, fmt.Sprintf("empty database %q not dropped (%v)", quarantine, err))
			}
		} else {
			left = append(left, fmt.Sprintf("%q holds the tables an earlier run moved", quarantine))
		}
		state := fmt.Sprintf("database %q with the tables it had at this run's start", name)
		if len(left) > 0 {
			state += "; " + strings.Join(left, "; ")
		}
		return &StateError{Step: step, State: state, Err: cause}
	}
	for _, d := range triggersOf(defs) {
		if _, err := conn.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+QuoteIdent(name)+"."+QuoteIdent(d.Name)); err != nil {
			return undo(err, "drop trigger "+d.Name)
		}
		if err := testCrash("quarantine: dropped trigger " + d.Name); err != nil {
			return err
		}
	}
	if stmt := renameStatement(name, quarantine, tables); stmt != "" {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return undo(err, "RENAME TABLE into quarantine")
		}
	}
	if err := testCrash("quarantine: moved"); err != nil {
		return err
	}
	after, err := Tables(ctx, db, name)
	if err != nil {
		return &StateError{Step: "check the database is empty of tables", Err: err,
			State: fmt.Sprintf("tables moved into %q; %q still holds its views, routines and events", quarantine, name)}
	}
	if left := movableNames(after); len(left) > 0 {
		return &StateError{Step: "check the database is empty of tables", Err: fmt.Errorf("tables appeared during the move: %s", strings.Join(left, ", ")),
			State: fmt.Sprintf("the tables listed before the move are in %q; %q still holds these and its views, routines and events", quarantine, name)}
	}
	if _, err := conn.ExecContext(ctx, "DROP DATABASE "+QuoteIdent(name)); err != nil {
		return &StateError{Step: "drop the emptied database", Err: err,
			State: fmt.Sprintf("tables moved into %q; %q still holds only its views, routines and events", quarantine, name)}
	}
	return nil
}

// notIn lists the objects of have that want lacks, as "kind name".
func notIn(have, want []Definition) []string {
	var out []string
	for _, h := range have {
		if !slices.ContainsFunc(want, func(w Definition) bool { return w.Kind == h.Kind && w.Name == h.Name }) {
			out = append(out, strings.ToLower(h.Kind)+" "+QuoteIdent(h.Name))
		}
	}
	return out
}

// Restore brings database name back from quarantine: creates it (or
// reuses it when it holds no table but those defs list, as an
// interrupted quarantine or restore leaves it), moves every table back
// with a single RENAME TABLE, recreates its views, routines, triggers and
// events from defs (each dropped first if there), and drops the emptied
// quarantine database. An interrupted restore is finished by calling it
// again; it returns nil at once when quarantine is gone and name exists.
func Restore(ctx context.Context, db *sql.DB, quarantine, name string, defs *Definitions) error {
	if err := checkInstanceName(name); err != nil {
		return err
	}
	if err := checkOwnName(quarantine); err != nil {
		return err
	}
	if defs == nil || defs.Database != name {
		return fmt.Errorf("restore of %q: no definitions of this database", name)
	}
	qExists, err := Exists(ctx, db, quarantine)
	if err != nil {
		return err
	}
	exists, err := Exists(ctx, db, name)
	if err != nil {
		return err
	}
	switch {
	case !qExists && exists:
		return nil // done before
	case !qExists:
		return &NotFoundError{Database: quarantine}
	}
	tables, err := Tables(ctx, db, quarantine)
	if err != nil {
		return err
	}
	conn, err := session(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close()
	if exists {
		cur, err := Tables(ctx, db, name)
		if err != nil {
			return err
		}
		var foreign []string
		for _, t := range movableNames(cur) {
			if !slices.Contains(defs.Tables, t) || slices.ContainsFunc(tables, func(q Table) bool { return q.Name == t }) {
				foreign = append(foreign, t)
			}
		}
		if len(foreign) > 0 {
			return &TakenError{Database: name, Tables: foreign}
		}
	} else {
		if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+QuoteIdent(name)+" CHARACTER SET "+QuoteIdent(defs.Charset)+
			" COLLATE "+QuoteIdent(defs.Collation)); err != nil {
			return fmt.Errorf("create database %q: %w", name, err)
		}
	}
	if err := testCrash("restore: created"); err != nil {
		return err
	}
	if stmt := renameStatement(quarantine, name, tables); stmt != "" {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return &StateError{Step: "RENAME TABLE out of quarantine", Err: err,
				State: fmt.Sprintf("the tables still in %q stay there; %q exists", quarantine, name)}
		}
	}
	if err := testCrash("restore: moved"); err != nil {
		return err
	}
	if err := recreate(ctx, db, name, defs.Objects); err != nil {
		return &StateError{Step: "recreate views, routines, triggers and events", Err: err,
			State: fmt.Sprintf("tables back in %q; some of its other objects missing (they are in the definitions and the dump); %q left empty", name, quarantine)}
	}
	if err := testCrash("restore: recreated"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "DROP DATABASE "+QuoteIdent(quarantine)); err != nil {
		return &StateError{Step: "drop the emptied quarantine", Err: err,
			State: fmt.Sprintf("%q restored whole; empty database %q left", name, quarantine)}
	}
	return nil
}

// testCrash, set by tests only, stops a run at a step as a crash would:
// the error is returned at once, nothing is undone.
var testCrashAt func(step string) bool

// ErrTestCrash is what a run stopped by a test crash returns.
var ErrTestCrash = errors.New("stopped by a test crash")

func testCrash(step string) error {
	if testCrashAt != nil && testCrashAt(step) {
		return ErrTestCrash
	}
	return nil
}

// Purge drops a quarantine database for good. It refuses any name without
// one of fleetsafe's reserved prefixes. dropped is false when it was
// already gone.
func Purge(ctx context.Context, db *sql.DB, quarantine string) (dropped bool, err error) {
	if err := checkOwnName(quarantine); err != nil {
		return false, err
	}
	ok, err := Exists(ctx, db, quarantine)
	if err != nil || !ok {
		return false, err
	}
	if _, err := db.ExecContext(ctx, "DROP DATABASE "+QuoteIdent(quarantine)); err != nil {
		return false, fmt.Errorf("drop quarantine database %q: %w", quarantine, err)
	}
	return true, nil
}

// session is one connection whose DDL waits at most LockWait seconds for
// a table another transaction holds.
func session(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", LockWait)); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// renameStatement moves every movable table of from into to, in one
// statement; "" when there is none.
func renameStatement(from, to string, tables []Table) string {
	var parts []string
	for _, t := range tables {
		if movable(t) {
			parts = append(parts, QuoteIdent(from)+"."+QuoteIdent(t.Name)+" TO "+QuoteIdent(to)+"."+QuoteIdent(t.Name))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "RENAME TABLE " + strings.Join(parts, ", ")
}

func movableNames(tables []Table) []string {
	var out []string
	for _, t := range tables {
		if movable(t) {
			out = append(out, t.Name)
		}
	}
	return out
}

func triggersOf(d *Definitions) []Definition {
	var out []Definition
	for _, o := range d.Objects {
		if o.Kind == KindTrigger {
			out = append(out, o)
		}
	}
	return out
}
