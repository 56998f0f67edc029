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
// Before anything moves, the definitions of those objects are kept in
// quarantine's DefinitionsTable, where Restore finds them: defs, when
// given (as ReadDefinitions gave them when the dump was taken), else
// those read now. Quarantine refuses, before changing anything, when name
// holds an object the definitions lack (created since), a table named
// DefinitionsTable, while clients are connected to name (*InUseError),
// and while tables of other databases reference name's by foreign key
// (*ForeignKeyError).
//
// An interrupted quarantine is finished by calling it again: it uses the
// definitions kept by the first run, moves the tables still in name, and
// returns nil at once when name is gone and quarantine exists. A
// quarantine database that exists without definitions of name and holds
// tables is someone else's: refused (*TakenError).
func Quarantine(ctx context.Context, db *sql.DB, name, quarantine string, defs *Definitions) error {
	if err := checkInstanceName(name); err != nil {
		return err
	}
	if err := checkOwnName(quarantine); err != nil {
		return err
	}
	if defs != nil && defs.Database != name {
		return fmt.Errorf("quarantine of %q: the definitions given are those of %q", name, defs.Database)
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
	var kept *Definitions
	if qExists {
		if kept, err = keptDefinitions(ctx, db, quarantine); err != nil {
			return err
		}
		if err := checkOwnQuarantine(ctx, db, quarantine, name, kept); err != nil {
			return err
		}
	}
	if err := RefuseIfUsed(ctx, db, name); err != nil {
		return err
	}
	if err := RefuseIfReferenced(ctx, db, name); err != nil {
		return err
	}
	if from, err := Incoming(ctx, db, name); err != nil {
		return err
	} else if from != "" && from != quarantine {
		return &InFlightError{Database: name, From: from}
	}
	cur, err := ReadDefinitions(ctx, db, name)
	if err != nil {
		return err
	}
	if slices.Contains(cur.Tables, DefinitionsTable) {
		return &NameError{Database: name, Why: fmt.Sprintf("it holds a table named %s, the name under which fleetsafe keeps a quarantine's views, routines, triggers and events; rename that table first", DefinitionsTable)}
	}
	use := kept
	if use == nil {
		use = defs
	}
	if use == nil {
		use = cur
	}
	if extra := notIn(cur.Objects, use.Objects); len(extra) > 0 {
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
		if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+QuoteIdent(quarantine)+" CHARACTER SET "+QuoteIdent(use.Charset)+
			" COLLATE "+QuoteIdent(use.Collation)); err != nil {
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
		if err := recreate(bctx, db, name, triggersOf(use)); err != nil {
			left = append(left, fmt.Sprintf("triggers of %q not recreated (%v); they are in the definitions and the dump", name, err))
		}
		if ts, err := Tables(bctx, db, quarantine); err == nil && len(ts) == 0 {
			if _, err := conn.ExecContext(bctx, "DROP DATABASE "+QuoteIdent(quarantine)); err != nil {
				left = append(left, fmt.Sprintf("database %q, holding no table, not dropped (%v)", quarantine, err))
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
	if kept == nil {
		if use, err = keepDefinitions(ctx, conn, db, quarantine, use); err != nil {
			return undo(err, "keep the definitions")
		}
		if use.Database != name {
			// Another run kept another database's definitions here.
			return &TakenError{Database: quarantine}
		}
	}
	if err := testCrash("quarantine: kept"); err != nil {
		return err
	}
	for _, d := range triggersOf(use) {
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

// checkOwnQuarantine refuses a quarantine database that exists and is
// not (the beginning of) name's: definitions of another database kept,
// or tables without definitions.
func checkOwnQuarantine(ctx context.Context, db *sql.DB, quarantine, name string, kept *Definitions) error {
	if kept != nil {
		if kept.Database != name {
			return &TakenError{Database: quarantine}
		}
		return nil
	}
	ts, err := Tables(ctx, db, quarantine)
	if err != nil {
		return err
	}
	if len(ts) > 0 {
		return &TakenError{Database: quarantine, Tables: movableNames(ts)}
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

// Restore brings database name back from quarantine (or from a staged
// restore, see Park): creates it (or reuses it when it holds no table but
// those the definitions list, as an interrupted quarantine leaves it),
// marked as in flight (its comment, see Incoming) until it is whole;
// moves every table back with a single RENAME TABLE; recreates its views,
// routines, triggers and events from the definitions kept in quarantine
// (defs, when given, only when none are kept); gives name its own
// comment back; and drops the emptied quarantine database with its
// definitions. A table in quarantine that the definitions do not list
// (put there by someone else) is refused before anything moves. An
// interrupted restore is finished by calling it again (Finish does it
// from name alone); it returns nil at once when quarantine is gone and
// name exists whole.
func Restore(ctx context.Context, db *sql.DB, quarantine, name string, defs *Definitions) error {
	return restore(ctx, db, quarantine, name, defs, false)
}

// PutInPlace is Restore from a staged restore (Park) into a name that
// must not exist: it never reuses nor merges into a database, unless the
// database is the in-flight one of a PutInPlace from staged that stopped.
func PutInPlace(ctx context.Context, db *sql.DB, staged, name string) error {
	return restore(ctx, db, staged, name, nil, true)
}

func restore(ctx context.Context, db *sql.DB, quarantine, name string, defs *Definitions, fresh bool) error {
	if err := checkInstanceName(name); err != nil {
		return err
	}
	if err := checkOwnName(quarantine); err != nil {
		return err
	}
	qExists, err := Exists(ctx, db, quarantine)
	if err != nil {
		return err
	}
	exists, err := Exists(ctx, db, name)
	if err != nil {
		return err
	}
	from := ""
	if exists {
		if from, err = Incoming(ctx, db, name); err != nil {
			return err
		}
	}
	switch {
	case !qExists && exists && from == "":
		return nil // done before
	case !qExists && exists:
		return &StateError{Step: "restore", Err: fmt.Errorf("database %q is being restored from %q, which is gone", name, from),
			State: fmt.Sprintf("%q holds its tables; its views, routines, triggers and events may be missing (they are in the archive's dump)", name)}
	case !qExists:
		return &NotFoundError{Database: quarantine}
	case from != "" && from != quarantine:
		return &TakenError{Database: name}
	case fresh && exists && from == "":
		return &TakenError{Database: name}
	}
	if p, err := Purging(ctx, db, quarantine); err != nil {
		return err
	} else if p {
		return &NameError{Database: quarantine, Why: "is being purged (a purge stopped half-way): it is no intact copy; run the purge again"}
	}
	kept, err := keptDefinitions(ctx, db, quarantine)
	if err != nil {
		return err
	}
	if kept != nil {
		defs = kept
	}
	if defs == nil {
		return &KeptError{Database: quarantine, Msg: "there are none, so its views, routines, triggers and events cannot be recreated"}
	}
	if defs.Database != name {
		return &KeptError{Database: quarantine, Msg: fmt.Sprintf("they are those of %q, not of %q", defs.Database, name)}
	}
	tables, err := Tables(ctx, db, quarantine)
	if err != nil {
		return err
	}
	if stray := notListed(movableNames(tables), defs.Tables); len(stray) > 0 {
		return &StrayTablesError{Database: quarantine, Tables: stray}
	}
	conn, err := session(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close()
	switch {
	case exists && from == "":
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
		if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+QuoteIdent(name)+commentClause(IncomingPrefix+quarantine)); err != nil {
			return fmt.Errorf("mark database %q as being restored: %w", name, err)
		}
	case !exists:
		if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+QuoteIdent(name)+" CHARACTER SET "+QuoteIdent(defs.Charset)+
			" COLLATE "+QuoteIdent(defs.Collation)+commentClause(IncomingPrefix+quarantine)); err != nil {
			return fmt.Errorf("create database %q: %w", name, err)
		}
	}
	if err := testCrash("restore: created"); err != nil {
		return err
	}
	if stmt := renameStatement(quarantine, name, tables); stmt != "" {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return &StateError{Step: "RENAME TABLE out of quarantine", Err: err,
				State: fmt.Sprintf("the tables still in %q stay there; %q exists, marked as being restored", quarantine, name)}
		}
	}
	if err := testCrash("restore: moved"); err != nil {
		return err
	}
	if err := recreate(ctx, db, name, defs.Objects); err != nil {
		return &StateError{Step: "recreate views, routines, triggers and events", Err: err,
			State: fmt.Sprintf("tables back in %q (marked as being restored); some of its other objects missing (they are kept in %q and in the archive's dump)", name, quarantine)}
	}
	if err := testCrash("restore: recreated"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+QuoteIdent(name)+commentClause(defs.Comment)); err != nil {
		return &StateError{Step: "give the database its comment back", Err: err,
			State: fmt.Sprintf("%q restored whole but still marked as being restored; %q holds only the definitions", name, quarantine)}
	}
	if err := testCrash("restore: whole"); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "DROP DATABASE "+QuoteIdent(quarantine)); err != nil {
		return &StateError{Step: "drop the emptied quarantine", Err: err,
			State: fmt.Sprintf("%q restored whole; database %q, holding only the definitions, left", name, quarantine)}
	}
	return nil
}

// Finish finishes a Restore into name that stopped half-way (Incoming
// names where from), reporting whether there was one.
func Finish(ctx context.Context, db *sql.DB, name string) (bool, error) {
	from, err := Incoming(ctx, db, name)
	if err != nil || from == "" {
		return false, err
	}
	return true, restore(ctx, db, from, name, nil, false)
}

// notListed lists the names of have that want lacks.
func notListed(have, want []string) []string {
	var out []string
	for _, h := range have {
		if !slices.Contains(want, h) {
			out = append(out, h)
		}
	}
	return out
}

// StrayTablesError is a quarantine holding tables its definitions do not
// list: someone put them there; they were never the instance's.
type StrayTablesError struct {
	Database string
	Tables   []string
}

func (e *StrayTablesError) Error() string {
	return fmt.Sprintf("database %q holds tables that were not moved there by the quarantine: %s", e.Database, strings.Join(e.Tables, ", "))
}

// Hint tells the operator what to do.
func (e *StrayTablesError) Hint() string {
	return "nothing was moved back; restore from the archive instead, or move those tables out of the quarantine by hand"
}

// Park makes a database loaded from a dump (staged, a reserved name)
// ready for PutInPlace into name: it keeps staged's definitions (views,
// routines, triggers and events, as for the database name) in its
// DefinitionsTable and drops those objects from staged, so that its
// tables can be moved by RENAME TABLE and no event of it runs meanwhile.
func Park(ctx context.Context, db *sql.DB, staged, name string) error {
	if err := checkOwnName(staged); err != nil {
		return err
	}
	if err := checkInstanceName(name); err != nil {
		return err
	}
	defs, err := ReadDefinitions(ctx, db, staged)
	if err != nil {
		return err
	}
	if slices.Contains(defs.Tables, DefinitionsTable) {
		return &NameError{Database: name, Why: fmt.Sprintf("its dump holds a table named %s, the name under which fleetsafe keeps a database's views, routines, triggers and events", DefinitionsTable)}
	}
	rename(defs, staged, name)
	defs.Comment = ""
	conn, err := session(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := keepDefinitions(ctx, conn, db, staged, defs); err != nil {
		return err
	}
	for _, o := range defs.Objects {
		if _, err := conn.ExecContext(ctx, "DROP "+o.Kind+" IF EXISTS "+QuoteIdent(staged)+"."+QuoteIdent(o.Name)); err != nil {
			return fmt.Errorf("drop %s %q of staged database %q: %w", strings.ToLower(o.Kind), o.Name, staged, err)
		}
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
	// Backslashes escape in string literals (quoteString), whatever the
	// server's sql_mode.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d, sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')", LockWait)); err != nil {
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
