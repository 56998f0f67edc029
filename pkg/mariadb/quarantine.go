package mariadb

import (
	"context"
	"database/sql"
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

// Quarantine moves every table and sequence of database name into the new
// database quarantine (a reserved name, such as fstrash_…) with a single
// RENAME TABLE, which the server runs atomically, then drops what is left
// of name: its views, routines and events, which RENAME TABLE cannot move
// and whose definitions are returned (and are in the dump) to recreate
// them. Triggers, which RENAME TABLE refuses to carry across databases,
// are dropped just before the move and recreated if it fails.
//
// It refuses while clients are connected to name (*InUseError).
func Quarantine(ctx context.Context, db *sql.DB, name, quarantine string) (*Definitions, error) {
	if err := checkInstanceName(name); err != nil {
		return nil, err
	}
	if err := checkOwnName(quarantine); err != nil {
		return nil, err
	}
	if ok, err := Exists(ctx, db, name); err != nil {
		return nil, err
	} else if !ok {
		return nil, &NotFoundError{Database: name}
	}
	if ok, err := Exists(ctx, db, quarantine); err != nil {
		return nil, err
	} else if ok {
		return nil, &TakenError{Database: quarantine}
	}
	if err := RefuseIfUsed(ctx, db, name); err != nil {
		return nil, err
	}
	defs, err := ReadDefinitions(ctx, db, name)
	if err != nil {
		return nil, err
	}
	tables, err := Tables(ctx, db, name)
	if err != nil {
		return nil, err
	}
	conn, err := session(ctx, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+QuoteIdent(quarantine)+" CHARACTER SET "+QuoteIdent(defs.Charset)+
		" COLLATE "+QuoteIdent(defs.Collation)); err != nil {
		return nil, fmt.Errorf("create quarantine database %q: %w", quarantine, err)
	}
	undo := func(cause error, step string) error {
		// Put the triggers back and drop the empty quarantine; what did
		// not come back is said.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		var left []string
		if err := recreate(bctx, db, name, triggersOf(defs)); err != nil {
			left = append(left, fmt.Sprintf("triggers of %q not recreated (%v); they are in the dump", name, err))
		}
		if _, err := conn.ExecContext(bctx, "DROP DATABASE "+QuoteIdent(quarantine)); err != nil {
			left = append(left, fmt.Sprintf("empty database %q not dropped (%v)", quarantine, err))
		}
		state := fmt.Sprintf("database %q as it was, nothing moved", name)
		if len(left) > 0 {
			state += "; " + strings.Join(left, "; ")
		}
		return &StateError{Step: step, State: state, Err: cause}
	}
	for _, d := range triggersOf(defs) {
		if _, err := conn.ExecContext(ctx, "DROP TRIGGER "+QuoteIdent(name)+"."+QuoteIdent(d.Name)); err != nil {
			return nil, undo(err, "drop trigger "+d.Name)
		}
	}
	if stmt := renameStatement(name, quarantine, tables); stmt != "" {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return nil, undo(err, "RENAME TABLE into quarantine")
		}
	}
	after, err := Tables(ctx, db, name)
	if err != nil {
		return defs, &StateError{Step: "check the database is empty of tables", Err: err,
			State: fmt.Sprintf("tables moved into %q; %q still holds its views, routines and events", quarantine, name)}
	}
	if left := movableNames(after); len(left) > 0 {
		return defs, &StateError{Step: "check the database is empty of tables", Err: fmt.Errorf("tables appeared during the move: %s", strings.Join(left, ", ")),
			State: fmt.Sprintf("the tables listed before the move are in %q; %q still holds these and its views, routines and events", quarantine, name)}
	}
	if _, err := conn.ExecContext(ctx, "DROP DATABASE "+QuoteIdent(name)); err != nil {
		return defs, &StateError{Step: "drop the emptied database", Err: err,
			State: fmt.Sprintf("tables moved into %q; %q still holds only its views, routines and events", quarantine, name)}
	}
	return defs, nil
}

// Restore brings database name back from quarantine: creates it (or
// reuses it when an interrupted quarantine left it without tables), moves
// every table back with a single RENAME TABLE, recreates its views,
// routines, triggers and events from defs, and drops the emptied
// quarantine database.
func Restore(ctx context.Context, db *sql.DB, quarantine, name string, defs *Definitions) error {
	if err := checkInstanceName(name); err != nil {
		return err
	}
	if err := checkOwnName(quarantine); err != nil {
		return err
	}
	if ok, err := Exists(ctx, db, quarantine); err != nil {
		return err
	} else if !ok {
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
	exists, err := Exists(ctx, db, name)
	if err != nil {
		return err
	}
	if exists {
		cur, err := Tables(ctx, db, name)
		if err != nil {
			return err
		}
		if left := movableNames(cur); len(left) > 0 {
			return &TakenError{Database: name, Tables: left}
		}
	} else {
		cs, coll := defs.Charset, defs.Collation
		if cs == "" {
			if err := db.QueryRowContext(ctx, `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA
				WHERE SCHEMA_NAME = ?`, quarantine).Scan(&cs, &coll); err != nil {
				return fmt.Errorf("read defaults of %q: %w", quarantine, err)
			}
		}
		if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+QuoteIdent(name)+" CHARACTER SET "+QuoteIdent(cs)+
			" COLLATE "+QuoteIdent(coll)); err != nil {
			return fmt.Errorf("create database %q: %w", name, err)
		}
	}
	if stmt := renameStatement(quarantine, name, tables); stmt != "" {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return &StateError{Step: "RENAME TABLE out of quarantine", Err: err,
				State: fmt.Sprintf("every table still in %q; %q exists without tables", quarantine, name)}
		}
	}
	if err := recreate(ctx, db, name, defs.Objects); err != nil {
		return &StateError{Step: "recreate views, routines, triggers and events", Err: err,
			State: fmt.Sprintf("tables back in %q; some of its other objects missing (they are in the dump); %q left empty", name, quarantine)}
	}
	if _, err := conn.ExecContext(ctx, "DROP DATABASE "+QuoteIdent(quarantine)); err != nil {
		return &StateError{Step: "drop the emptied quarantine", Err: err,
			State: fmt.Sprintf("%q restored whole; empty database %q left", name, quarantine)}
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
