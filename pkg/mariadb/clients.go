package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Client is a connection to the server whose current database is the one
// asked about.
type Client struct {
	ID   int64
	User string
	// Host is the client's host and port, or "localhost" over the socket.
	Host string
	// Program is the program_name connection attribute the client sent,
	// when performance_schema is on (it is off by default in MariaDB);
	// otherwise "".
	Program string
	Command string
	// Seconds in the current state.
	Seconds int64
}

func (c Client) String() string {
	s := fmt.Sprintf("connection %d of %s@%s", c.ID, c.User, c.Host)
	if c.Program != "" {
		s += " (" + c.Program + ")"
	}
	return s
}

// Clients lists the connections using database name, ours excluded, and
// the server's own threads (event scheduler, replication) excluded.
// PROCESSLIST.DB compares without case: BINARY keeps the clients of
// "App" off the list of "app".
func Clients(ctx context.Context, db *sql.DB, name string) ([]Client, error) {
	rows, err := db.QueryContext(ctx, `SELECT ID, USER, HOST, COMMAND, TIME FROM information_schema.PROCESSLIST
		WHERE BINARY DB = ? AND ID <> CONNECTION_ID() AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Slave_IO', 'Slave_SQL', 'Slave_worker')
		ORDER BY ID`, name)
	if err != nil {
		return nil, fmt.Errorf("list clients of database %q: %w", name, err)
	}
	var out []Client
	for rows.Next() {
		var c Client
		if err := rows.Scan(&c.ID, &c.User, &c.Host, &c.Command, &c.Seconds); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list clients of database %q: %w", name, err)
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list clients of database %q: %w", name, err)
	}
	if len(out) == 0 {
		return out, nil
	}
	var ps int
	if err := db.QueryRowContext(ctx, "SELECT @@performance_schema").Scan(&ps); err != nil || ps == 0 {
		return out, nil
	}
	for i := range out {
		var prog sql.NullString
		// The attribute is best effort: the connection list stands
		// without it.
		_ = db.QueryRowContext(ctx, `SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs
			WHERE PROCESSLIST_ID = ? AND ATTR_NAME = 'program_name'`, out[i].ID).Scan(&prog)
		out[i].Program = prog.String
	}
	return out, nil
}

// InUseError is a database that clients are connected to: fleetsafe does
// not move it from under them.
type InUseError struct {
	Database string
	Clients  []Client
	// Held is true when the clients were found through the locks on the
	// database's tables (Lockers), not by their current database.
	Held bool
}

func (e *InUseError) Error() string {
	names := make([]string, len(e.Clients))
	for i, c := range e.Clients {
		names[i] = c.String()
	}
	if e.Held {
		if len(names) == 0 {
			return fmt.Sprintf("database %q: its tables are held (a lock or an open transaction) by a connection whose current database is another one", e.Database)
		}
		return fmt.Sprintf("database %q: its tables are held (a lock or an open transaction) by a connection whose current database is another one; connection(s) with an open transaction: %s", e.Database, strings.Join(names, "; "))
	}
	return fmt.Sprintf("database %q has %d client connection(s): %s", e.Database, len(e.Clients), strings.Join(names, "; "))
}

// Hint tells the operator what to do.
func (e *InUseError) Hint() string {
	return "stop the instance's application (and anything else connected to its database), then run again"
}

// RefuseIfUsed returns an *InUseError naming the clients of database name
// (by their current database, or, through Lockers, by the locks they hold
// on its tables),
// if it has any.
// A connection that was just closed (the dump's own, a moment ago) stays
// in the process list until the server has cleaned it up: the clients
// found get CloseGrace to go before they count.
func RefuseIfUsed(ctx context.Context, db *sql.DB, name string) error {
	deadline := time.Now().Add(CloseGrace)
	for {
		cs, err := Clients(ctx, db, name)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			held, ls, err := Lockers(ctx, db, name)
			if err != nil {
				return err
			}
			if !held {
				return nil
			}
			if time.Now().After(deadline) {
				return &InUseError{Database: name, Clients: ls, Held: true}
			}
		} else if time.Now().After(deadline) {
			return &InUseError{Database: name, Clients: cs}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CloseGrace is how long RefuseIfUsed waits for connections to go.
const CloseGrace = time.Second
