package model

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// withSession runs fn on one connection to database name and returns once
// the server process of that connection has exited. Closing a connection
// only asks the server to end it; its backend can stay in pg_stat_activity
// for a while on a loaded machine, and a soft delete then rightly reports
// a session open on the database. The machine's own looks must not be
// those sessions.
func withSession(ctx context.Context, pg pgdump.Conn, name string, fn func(*sql.Conn) error) error {
	db, err := pg.Open(ctx, name)
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return err
	}
	var pid int
	err = conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid)
	if err == nil {
		err = fn(conn)
	}
	conn.Close()
	db.Close()
	if werr := waitBackendGone(ctx, pg, pid); err == nil {
		err = werr
	}
	return err
}

// watcher is a connection to the postgres database that waitBackendGone
// polls pg_stat_activity on.
var watcher struct {
	sync.Mutex
	db *sql.DB
}

func waitBackendGone(ctx context.Context, pg pgdump.Conn, pid int) error {
	if pid == 0 {
		return nil
	}
	watcher.Lock()
	defer watcher.Unlock()
	if watcher.db == nil {
		db, err := pg.Open(ctx, "postgres")
		if err != nil {
			return err
		}
		db.SetMaxOpenConns(1)
		watcher.db = db
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := watcher.db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server process %d of a closed connection is still there after 30 s", pid)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
