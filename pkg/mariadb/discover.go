package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// SystemSchemas are the server's own schemas, never an instance's.
var SystemSchemas = []string{"mysql", "information_schema", "performance_schema", "sys"}

// Database name prefixes fleetsafe gives the databases it creates or
// renames: quarantined, being purged, staged for a restore. They are the
// postgresql kind's (pkg/kinds/postgresql), so that one set of names is
// reserved on every database server.
const (
	QuarantinePrefix = "fstrash_"
	PurgingPrefix    = "fspurge_"
	StagingPrefix    = "fsrestore_"
	// HandStagingPrefix starts the database RESTORE.md's steps restore
	// into by hand.
	HandStagingPrefix = "fleetsafe_restore_"
)

// ReservedPrefixes start the names of fleetsafe's own databases: a
// quarantine, a purge or restore in progress, a restore-test scratch
// database. A layout may claim none of them.
var ReservedPrefixes = []string{QuarantinePrefix, PurgingPrefix, StagingPrefix, HandStagingPrefix, ScratchPrefix}

// Reserved reports whether name starts with one of fleetsafe's reserved
// database prefixes (ReservedPrefixes): a quarantine, a purge or restore
// in progress, a restore-test scratch database.
func Reserved(name string) bool {
	for _, p := range ReservedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Databases lists, from information_schema, the databases that may be an
// instance's: neither the server's own schemas nor fleetsafe's (reserved
// prefixes), sorted.
func Databases(ctx context.Context, db *sql.DB) ([]string, error) {
	all, err := schemas(ctx, db)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(n string) bool { return slices.Contains(SystemSchemas, n) || Reserved(n) }), nil
}

// Own lists fleetsafe's own databases (those with a reserved prefix),
// sorted: quarantines and leftovers, never an instance.
func Own(ctx context.Context, db *sql.DB) ([]string, error) {
	all, err := schemas(ctx, db)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(n string) bool { return !Reserved(n) }), nil
}

func schemas(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	// The server's collation may order differently from Go; callers get
	// a byte order.
	slices.Sort(out)
	return out, nil
}

// Exists reports whether database name exists. (Names are compared with
// BINARY throughout the package: information_schema's schema columns
// already compare with case on this server, PROCESSLIST.DB does not.)
func Exists(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE BINARY SCHEMA_NAME = ?", name).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look for database %q: %w", name, err)
	}
	return n > 0, nil
}

// Table is a table of a database, as information_schema names its type
// (BASE TABLE, SYSTEM VERSIONED, SEQUENCE, VIEW).
type Table struct {
	Name, Type string
}

// Tables lists the tables, sequences and views of database name, by name.
// In one of fleetsafe's own databases (Reserved), the table that keeps
// the definitions (DefinitionsTable) is not listed: it is no table of
// the instance's.
func Tables(ctx context.Context, db *sql.DB, name string) ([]Table, error) {
	rows, err := db.QueryContext(ctx, "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE BINARY TABLE_SCHEMA = ?", name)
	if err != nil {
		return nil, fmt.Errorf("list tables of %q: %w", name, err)
	}
	defer rows.Close()
	var out []Table
	for rows.Next() {
		var t Table
		if err := rows.Scan(&t.Name, &t.Type); err != nil {
			return nil, fmt.Errorf("list tables of %q: %w", name, err)
		}
		if t.Name == DefinitionsTable && Reserved(name) {
			continue
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables of %q: %w", name, err)
	}
	slices.SortFunc(out, func(a, b Table) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// movable reports whether RENAME TABLE moves a table of this type to
// another database (views cannot move: they are recreated).
func movable(t Table) bool { return t.Type != "VIEW" }
