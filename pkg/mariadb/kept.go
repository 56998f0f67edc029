package mariadb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// DefinitionsTable is the table in which one of fleetsafe's own databases
// (a quarantine, a staged restore) keeps the Definitions of the database
// whose tables it holds: the views, routines, triggers and events that
// RENAME TABLE cannot carry, which Quarantine drops and Restore
// recreates. They travel with the tables, so that any Restore (after a
// soft delete, a forced restore's move aside, a rollback, a crash) finds
// them without an archive. One row: the Definitions as JSON and its
// sha256, checked on every read. Tables does not list it in fleetsafe's
// own databases; an instance's database may not hold a table of this name.
const DefinitionsTable = "fleetsafe_definitions"

// IncomingPrefix starts the comment of a database that Restore is moving
// tables into: its tables may be there while its views, routines,
// triggers and events are not yet. The rest of the comment names the
// database the tables come from, which keeps the definitions. Restore
// puts the database's own comment back as its last step but one.
const IncomingPrefix = "fleetsafe: restore in progress from "

// InFlightError is a database that a Restore was moving tables into when
// it stopped: not whole yet.
type InFlightError struct {
	Database, From string
}

func (e *InFlightError) Error() string {
	return fmt.Sprintf("database %q is being restored from %q and is not whole yet (a restore stopped half-way)", e.Database, e.From)
}

// Hint tells the operator what to do.
func (e *InFlightError) Hint() string {
	return "run the restore again: it finishes the move (instance_restore does it before anything else)"
}

// KeptError is a definitions table that cannot be trusted: unreadable,
// not matching its checksum, or of another database.
type KeptError struct {
	Database string
	Msg      string
}

func (e *KeptError) Error() string {
	return fmt.Sprintf("the definitions kept in %q: %s", e.Database, e.Msg)
}

// Hint tells the operator what to do.
func (e *KeptError) Hint() string {
	return "restore from the archive instead: its dump holds the views, routines, triggers and events"
}

// keepDefinitions writes defs into the definitions table of own (a
// reserved database), unless a run before did: what is kept is never
// replaced. It returns the definitions kept.
func keepDefinitions(ctx context.Context, conn *sql.Conn, db *sql.DB, own string, defs *Definitions) (*Definitions, error) {
	js, err := json.Marshal(defs)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(js)
	t := QuoteIdent(own) + "." + QuoteIdent(DefinitionsTable)
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+t+
		" (id TINYINT PRIMARY KEY, definitions LONGTEXT NOT NULL, sha256 CHAR(64) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"); err != nil {
		return nil, fmt.Errorf("create the definitions table of %q: %w", own, err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT IGNORE INTO "+t+" VALUES (1, ?, ?)", string(js), hex.EncodeToString(sum[:])); err != nil {
		return nil, fmt.Errorf("keep the definitions of %q in %q: %w", defs.Database, own, err)
	}
	kept, err := keptDefinitions(ctx, db, own)
	if err == nil && kept == nil {
		err = &KeptError{Database: own, Msg: "written, then not found"}
	}
	return kept, err
}

// keptDefinitions reads the definitions kept in own: nil (and no error)
// when it has no definitions table or an empty one (a run stopped before
// writing it).
func keptDefinitions(ctx context.Context, db *sql.DB, own string) (*Definitions, error) {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE BINARY TABLE_SCHEMA = ? AND BINARY TABLE_NAME = ?",
		own, DefinitionsTable).Scan(&n); err != nil {
		return nil, fmt.Errorf("look for the definitions table of %q: %w", own, err)
	}
	if n == 0 {
		return nil, nil
	}
	var js, sum string
	err := db.QueryRowContext(ctx, "SELECT definitions, sha256 FROM "+QuoteIdent(own)+"."+QuoteIdent(DefinitionsTable)+" WHERE id = 1").Scan(&js, &sum)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, &KeptError{Database: own, Msg: err.Error()}
	}
	got := sha256.Sum256([]byte(js))
	if hex.EncodeToString(got[:]) != sum {
		return nil, &KeptError{Database: own, Msg: "they do not match their sha256 (changed by hand?)"}
	}
	var d Definitions
	if err := json.Unmarshal([]byte(js), &d); err != nil {
		return nil, &KeptError{Database: own, Msg: err.Error()}
	}
	return &d, nil
}

// KeptDefinitions reads and checks the definitions kept in own (a
// quarantine or a staged restore); a *KeptError when there are none or
// they cannot be trusted.
func KeptDefinitions(ctx context.Context, db *sql.DB, own string) (*Definitions, error) {
	d, err := keptDefinitions(ctx, db, own)
	if err == nil && d == nil {
		err = &KeptError{Database: own, Msg: "there are none"}
	}
	return d, err
}

// Incoming returns the database a stopped Restore was moving name's
// tables from, or "" when name is not being restored (or does not exist).
func Incoming(ctx context.Context, db *sql.DB, name string) (string, error) {
	var c sql.NullString
	err := db.QueryRowContext(ctx, "SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE BINARY SCHEMA_NAME = ?", name).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the comment of database %q: %w", name, err)
	}
	if len(c.String) > len(IncomingPrefix) && c.String[:len(IncomingPrefix)] == IncomingPrefix {
		return c.String[len(IncomingPrefix):], nil
	}
	return "", nil
}

// commentClause is the COMMENT clause of CREATE or ALTER DATABASE.
func commentClause(c string) string {
	return " COMMENT = " + quoteString(c)
}

// quoteString quotes s as an SQL string literal for the server (backslash
// escapes on, as fleetsafe's sessions run).
func quoteString(s string) string {
	var b []byte
	b = append(b, '\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b = append(b, '\'', '\'')
		case '\\':
			b = append(b, '\\', '\\')
		case 0:
			b = append(b, '\\', '0')
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '\''))
}
