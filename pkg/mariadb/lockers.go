package mariadb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// ProbeWait is how long, in seconds, Lockers waits for the tables of a
// database before it counts them as held by another connection.
const ProbeWait = 1

// Lockers finds the connections that use database name through its
// tables, whatever their current database: a connection with no default
// database (or another one) that reads or writes name's tables by
// qualified names holds their metadata locks while its transaction is
// open, which PROCESSLIST.DB does not show. It takes LOCK TABLES ... WRITE
// on every table and sequence of name for at most ProbeWait seconds and
// releases it at once: when the lock cannot be had, some connection holds
// a table. held is then true, and clients names the connections with an
// open transaction (INNODB_TRX), ours excluded, which are the likely
// holders (the server does not say which holds what without the
// metadata_lock_info plugin).
func Lockers(ctx context.Context, db *sql.DB, name string) (held bool, clients []Client, err error) {
	tables, err := Tables(ctx, db, name)
	if err != nil {
		return false, nil, err
	}
	var parts []string
	for _, t := range tables {
		if movable(t) {
			parts = append(parts, QuoteIdent(name)+"."+QuoteIdent(t.Name)+" WRITE")
		}
	}
	if len(parts) == 0 {
		return false, nil, nil
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return false, nil, err
	}
	// The probe's connection is not given back to the pool: whatever
	// happens, its locks go with it.
	defer func() {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
	}()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", ProbeWait)); err != nil {
		return false, nil, fmt.Errorf("probe the tables of %q: %w", name, err)
	}
	_, err = conn.ExecContext(ctx, "LOCK TABLES "+strings.Join(parts, ", "))
	if err == nil {
		if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
			return false, nil, fmt.Errorf("probe the tables of %q: unlock: %w", name, err)
		}
		return false, nil, nil
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1205 { // ER_LOCK_WAIT_TIMEOUT
		return false, nil, fmt.Errorf("probe the tables of %q: %w", name, err)
	}
	rows, err := db.QueryContext(ctx, `SELECT p.ID, p.USER, p.HOST, p.COMMAND, p.TIME FROM information_schema.INNODB_TRX x
		JOIN information_schema.PROCESSLIST p ON p.ID = x.trx_mysql_thread_id
		WHERE p.ID <> CONNECTION_ID() ORDER BY p.ID`)
	if err != nil {
		return true, nil, fmt.Errorf("list the open transactions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c Client
		if err := rows.Scan(&c.ID, &c.User, &c.Host, &c.Command, &c.Seconds); err != nil {
			return true, nil, fmt.Errorf("list the open transactions: %w", err)
		}
		clients = append(clients, c)
	}
	return true, clients, rows.Err()
}
