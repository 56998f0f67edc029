package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// DropWait bounds how long WaitDropped waits for another connection's
// DROP DATABASE to finish.
const DropWait = 120 * time.Second

// WaitDropped waits while another connection runs DROP DATABASE on name:
// a purge killed during its DROP leaves the server dropping the database
// for the dead connection (a killed client does not stop a DDL statement
// already running), and a run that acts on the database meanwhile races
// with it. It returns nil once no such statement runs, and an error
// naming the connection after DropWait.
func WaitDropped(ctx context.Context, db *sql.DB, name string) error {
	deadline := time.Now().Add(DropWait)
	for {
		var id int64
		err := db.QueryRowContext(ctx, `SELECT ID FROM information_schema.PROCESSLIST
			WHERE ID <> CONNECTION_ID() AND INFO LIKE 'DROP DATABASE%' AND LOCATE(BINARY ?, INFO) > 0 ORDER BY ID LIMIT 1`, name).Scan(&id)
		if err == sql.ErrNoRows {
			return nil
		}
		if err != nil {
			return fmt.Errorf("look for a DROP DATABASE of %q running: %w", name, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("database %q is still being dropped by connection %d after %s: run again once it is over", name, id, DropWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
