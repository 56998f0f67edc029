package mariadb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Object kinds a database holds besides its tables, as SHOW CREATE names
// them.
const (
	KindView      = "VIEW"
	KindProcedure = "PROCEDURE"
	KindFunction  = "FUNCTION"
	KindTrigger   = "TRIGGER"
	KindEvent     = "EVENT"
)

// Definition is one object that RENAME TABLE cannot carry to another
// database (a view, a stored routine, a trigger, an event), as the server
// gave its CREATE statement and the session settings it was created with.
type Definition struct {
	Kind                string `json:"kind"`
	Name                string `json:"name"`
	SQL                 string `json:"sql"`
	SQLMode             string `json:"sql_mode,omitempty"`
	TimeZone            string `json:"time_zone,omitempty"`
	CharsetClient       string `json:"character_set_client,omitempty"`
	CollationConnection string `json:"collation_connection,omitempty"`
}

// Definitions is what a quarantine keeps besides the tables: the
// database's defaults and its other objects, to recreate them on
// restore. Its JSON form belongs in the archive beside the dump.
type Definitions struct {
	Database  string `json:"database"`
	Charset   string `json:"charset"`
	Collation string `json:"collation"`
	// Comment is the database's own comment (CREATE DATABASE … COMMENT).
	Comment string `json:"comment,omitempty"`
	// Tables are the tables and sequences RENAME TABLE moves.
	Tables  []string     `json:"tables"`
	Objects []Definition `json:"objects"`
}

// querier is a pool or one connection of it.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ReadDefinitions reads the defaults of database name and the CREATE
// statement of each of its views, routines, triggers and events. They
// are read on a connection whose current database is name, so that the
// server writes the names of name's own tables in a view's statement
// without the database's name: the statement recreates the view in any
// database (a staging database's views go into the instance's).
func ReadDefinitions(ctx context.Context, db *sql.DB, name string) (*Definitions, error) {
	d := &Definitions{Database: name, Tables: []string{}, Objects: []Definition{}}
	err := db.QueryRowContext(ctx, `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, COALESCE(SCHEMA_COMMENT, '') FROM information_schema.SCHEMATA
		WHERE BINARY SCHEMA_NAME = ?`, name).Scan(&d.Charset, &d.Collation, &d.Comment)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &NotFoundError{Database: name}
	}
	if err != nil {
		return nil, fmt.Errorf("read defaults of database %q: %w", name, err)
	}
	tables, err := Tables(ctx, db, name)
	if err != nil {
		return nil, err
	}
	conn, done, err := useConn(ctx, db, name)
	if err != nil {
		return nil, err
	}
	defer done()
	d.Tables = append(d.Tables, movableNames(tables)...)
	lists := []struct{ kind, query string }{
		// Routines first: views and triggers may call them.
		{"", `SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE BINARY ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME`},
		{KindView, `SELECT 'VIEW', TABLE_NAME FROM information_schema.VIEWS WHERE BINARY TABLE_SCHEMA = ? ORDER BY TABLE_NAME`},
		{KindTrigger, `SELECT 'TRIGGER', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE BINARY TRIGGER_SCHEMA = ?
			ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER`},
		{KindEvent, `SELECT 'EVENT', EVENT_NAME FROM information_schema.EVENTS WHERE BINARY EVENT_SCHEMA = ? ORDER BY EVENT_NAME`},
	}
	for _, l := range lists {
		rows, err := conn.QueryContext(ctx, l.query, name)
		if err != nil {
			return nil, fmt.Errorf("list objects of database %q: %w", name, err)
		}
		var objs [][2]string
		for rows.Next() {
			var k, n string
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("list objects of database %q: %w", name, err)
			}
			objs = append(objs, [2]string{k, n})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("list objects of database %q: %w", name, err)
		}
		for _, o := range objs {
			if o[0] != KindProcedure && o[0] != KindFunction && o[0] != KindView && o[0] != KindTrigger && o[0] != KindEvent {
				return nil, fmt.Errorf("database %q holds %s %q, which fleetsafe cannot quarantine and recreate", name, strings.ToLower(o[0]), o[1])
			}
			def, err := showCreate(ctx, conn, name, o[0], o[1])
			if err != nil {
				return nil, err
			}
			d.Objects = append(d.Objects, def)
		}
	}
	return d, nil
}

// showCreate reads SHOW CREATE <kind> of one object, by column name.
func showCreate(ctx context.Context, db querier, dbName, kind, name string) (Definition, error) {
	def := Definition{Kind: kind, Name: name}
	rows, err := db.QueryContext(ctx, "SHOW CREATE "+kind+" "+QuoteIdent(dbName)+"."+QuoteIdent(name))
	if err != nil {
		return def, fmt.Errorf("SHOW CREATE %s %q.%q: %w", kind, dbName, name, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return def, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return def, fmt.Errorf("SHOW CREATE %s %q.%q: %w", kind, dbName, name, err)
		}
		return def, fmt.Errorf("SHOW CREATE %s %q.%q: no row (dropped meanwhile?)", kind, dbName, name)
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return def, fmt.Errorf("SHOW CREATE %s %q.%q: %w", kind, dbName, name, err)
	}
	for i, c := range cols {
		v := vals[i].String
		switch strings.ToLower(c) {
		case "create view", "create procedure", "create function", "sql original statement", "create event":
			def.SQL = v
		case "sql_mode":
			def.SQLMode = v
		case "time_zone":
			def.TimeZone = v
		case "character_set_client":
			def.CharsetClient = v
		case "collation_connection":
			def.CollationConnection = v
		}
	}
	if def.SQL == "" {
		// A routine created by another user shows no body to us.
		return def, fmt.Errorf("SHOW CREATE %s %q.%q gave no statement (not enough privileges to read it?)", kind, dbName, name)
	}
	return def, nil
}

// recreate runs the definitions in database name, on one connection,
// each under the session settings it was created with. Each object of the
// same name is dropped first (the leftover of an interrupted run). Views
// that need a view created later are retried until no more succeeds.
func recreate(ctx context.Context, db *sql.DB, name string, defs []Definition) error {
	conn, done, err := useConn(ctx, db, name)
	if err != nil {
		return err
	}
	defer done()
	run := func(d Definition) error {
		set := []string{"SET SESSION sql_mode = ?"}
		args := []any{d.SQLMode}
		if d.TimeZone != "" {
			set, args = append(set, "time_zone = ?"), append(args, d.TimeZone)
		}
		// The statement travels as utf8mb4; the client character set it
		// was created under is kept when its text fits it.
		cs := "utf8mb4"
		if d.CharsetClient != "" && (!strings.HasPrefix(d.CharsetClient, "utf8") || !has4ByteRune(d.SQL)) {
			cs = d.CharsetClient
		}
		set, args = append(set, "character_set_client = ?"), append(args, cs)
		if d.CollationConnection != "" && (cs == d.CharsetClient) {
			set, args = append(set, "collation_connection = ?"), append(args, d.CollationConnection)
		}
		if _, err := conn.ExecContext(ctx, strings.Join(set, ", "), args...); err != nil {
			return fmt.Errorf("session settings of %s %q: %w", strings.ToLower(d.Kind), d.Name, err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SET NAMES utf8mb4") //nolint:errcheck
		if _, err := conn.ExecContext(ctx, "DROP "+d.Kind+" IF EXISTS "+QuoteIdent(d.Name)); err != nil {
			return fmt.Errorf("drop leftover %s %q: %w", strings.ToLower(d.Kind), d.Name, err)
		}
		if _, err := conn.ExecContext(ctx, d.SQL); err != nil {
			return fmt.Errorf("recreate %s %q: %w", strings.ToLower(d.Kind), d.Name, err)
		}
		return nil
	}
	isRoutine := func(d Definition) bool { return d.Kind == KindProcedure || d.Kind == KindFunction }
	for _, d := range defs {
		if isRoutine(d) {
			if err := run(d); err != nil {
				return err
			}
		}
	}
	var views []Definition
	for _, d := range defs {
		if d.Kind == KindView {
			views = append(views, d)
		}
	}
	for len(views) > 0 {
		var later []Definition
		var lastErr error
		for _, v := range views {
			if err := run(v); err != nil {
				later, lastErr = append(later, v), err
			}
		}
		if len(later) == len(views) {
			return lastErr
		}
		views = later
	}
	for _, d := range defs {
		if d.Kind == KindView || isRoutine(d) {
			continue
		}
		if err := run(d); err != nil {
			return err
		}
	}
	return nil
}

func has4ByteRune(s string) bool {
	for _, r := range s {
		if utf8.RuneLen(r) == 4 {
			return true
		}
	}
	return false
}

// useConn returns a connection of db whose current database is name, and
// the function that ends it. The connection is closed, never handed back
// to the pool: an idle connection of ours whose current database is name
// would count as a client of name (Clients) for the next caller.
func useConn(ctx context.Context, db *sql.DB, name string) (*sql.Conn, func(), error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	done := func() {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
	}
	if _, err := conn.ExecContext(ctx, "USE "+QuoteIdent(name)); err != nil {
		done()
		return nil, nil, fmt.Errorf("use database %q: %w", name, err)
	}
	return conn, done, nil
}
