package postgresql

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// Dump writes the database with pg_dump -Fc; the Since it returns names
// the sessions open on the database afterwards.
func (Kind) Dump(ctx context.Context, env kind.Env, t kind.Target, file string) (kind.Since, error) {
	pg := Conn(env)
	if err := pgdump.Dump(ctx, pg, t.Locator, file); err != nil {
		return nil, err
	}
	return func(ctx context.Context) ([]string, error) { return databaseChanges(ctx, pg, t.Locator) }, nil
}

// VerifyDump reads a custom-format dump to its last data block.
func (Kind) VerifyDump(r io.Reader) (kind.DumpSummary, error) {
	sum, err := pgdump.Verify(r)
	if err != nil {
		return kind.DumpSummary{}, err
	}
	return kind.DumpSummary{Entries: sum.Entries, DataBlocks: sum.DataBlocks}, nil
}

// databaseChanges names the sessions open on a database after it was
// dumped: they may write before the rename. (A session that came and went
// meanwhile is not seen: pg_stat_database's counters are flushed too late
// after a backend exits to be compared without false alarms.)
func databaseChanges(ctx context.Context, pg pgdump.Conn, db string) ([]string, error) {
	conns, err := settledConnections(ctx, pg, db)
	if err != nil || len(conns) == 0 {
		return nil, err
	}
	return []string{fmt.Sprintf("database %s has %d session(s) opened after it was dumped: %s", db, len(conns), strings.Join(conns, "; "))}, nil
}

// ownSessionGrace is how long settledConnections waits for fleetsafe's
// own sessions to be gone from the server.
const ownSessionGrace = 2 * time.Second

// settledConnections is openConnections once fleetsafe's own sessions
// have had time to end. The server process of a session whose client has
// gone (this run's pg_dump, a previous fleetsafe run's look at the
// database) stays listed for a moment, longer on a loaded machine, and
// would read as an open connection or a late change: sessions that all
// carry fleetsafe's application name are looked at again for up to
// ownSessionGrace before they count; any other session counts at once.
func settledConnections(ctx context.Context, pg pgdump.Conn, db string) ([]string, error) {
	deadline := time.Now().Add(ownSessionGrace)
	conns, err := openConnections(ctx, pg, db)
	for err == nil && len(conns) > 0 && allOwnSessions(conns) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		conns, err = openConnections(ctx, pg, db)
	}
	return conns, err
}

// allOwnSessions reports whether every session openConnections described
// carries fleetsafe's application name (pgdump sets it for pg_dump too).
func allOwnSessions(conns []string) bool {
	for _, c := range conns {
		if !strings.HasPrefix(c, "application fleetsafe,") {
			return false
		}
	}
	return true
}

// openConnections lists the sessions that would keep a database from being
// renamed into quarantine. Autovacuum workers are not sessions: PostgreSQL
// stops them itself for ALTER DATABASE … RENAME. Client backends are named
// by application, client and user; any other backend (a walsender, a
// logical replication or extension worker) by its type, since it blocks
// the rename too.
func openConnections(ctx context.Context, pg pgdump.Conn, db string) ([]string, error) {
	conn, err := pg.Open(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, `SELECT coalesce(backend_type, ''),
		coalesce(nullif(application_name, ''), '(no application name)'),
		coalesce(host(client_addr), 'local socket'), coalesce(nullif(usename, ''), '(no user)')
		FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
		AND coalesce(backend_type, '') NOT IN ('autovacuum worker', 'autovacuum launcher')`, db)
	if err != nil {
		return nil, fmt.Errorf("list connections to %s: %w", db, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ, app, client, user string
		if err := rows.Scan(&typ, &app, &client, &user); err != nil {
			return nil, err
		}
		if typ == "client backend" {
			out = append(out, fmt.Sprintf("application %s, client %s, user %s", app, client, user))
			continue
		}
		out = append(out, fmt.Sprintf("a %s (not a client session), user %s", typ, user))
	}
	return out, rows.Err()
}
