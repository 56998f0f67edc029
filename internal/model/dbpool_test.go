package model

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// dbPool keeps the databases of finished checks for the next ones: a
// CREATE DATABASE copies template1 (half a second on a loaded machine,
// several per check), an ALTER DATABASE … RENAME is a catalog update. A
// database goes back into the pool only when it is emptied to what CREATE
// DATABASE gives (no relation, schema, extension or comment of its own,
// open to connections, owned by the test's role); anything else is
// dropped. Each check then fills its databases itself and the machine
// takes their digests from the server, as with fresh ones.
//
// Pooled databases are named fsmodelpool_<pid>_<n>: the process drops its
// own when its tests end, and those of processes that no longer run when
// it starts.
type dbPool struct {
	mu     sync.Mutex
	free   []string
	next   int
	prefix string
}

// poolMax bounds the databases a process keeps between checks.
const poolMax = 16

const poolMarker = "fsmodelpool_"

var pool = &dbPool{prefix: fmt.Sprintf("%s%d_", poolMarker, os.Getpid())}

// create makes database name empty: a pooled one renamed, else a new one.
func (p *dbPool) create(ctx context.Context, admin *sql.DB, name string) error {
	for {
		p.mu.Lock()
		if len(p.free) == 0 {
			p.mu.Unlock()
			break
		}
		from := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		p.mu.Unlock()
		if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+pgdump.QuoteIdent(from)+" RENAME TO "+pgdump.QuoteIdent(name)); err == nil {
			return nil
		}
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgdump.QuoteIdent(from)+" WITH (FORCE)")
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(name)); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// recycle takes back every database whose name contains marker (a
// fleet's, quarantined and staged ones included): emptied into the pool,
// or dropped.
func (p *dbPool) recycle(ctx context.Context, pg pgdump.Conn, marker string) error {
	admin, err := pg.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer admin.Close()
	names, err := databasesLike(ctx, admin, marker)
	if err != nil {
		return err
	}
	for _, n := range names {
		if p.giveBack(ctx, admin, pg, n) {
			continue
		}
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgdump.QuoteIdent(n)+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", n, err)
		}
	}
	return nil
}

// giveBack empties database name and renames it into the pool; false
// when it is not pooled (the pool is full, or the database holds what
// emptying does not remove, or a step failed): the caller drops it.
func (p *dbPool) giveBack(ctx context.Context, admin *sql.DB, pg pgdump.Conn, name string) bool {
	p.mu.Lock()
	full := len(p.free) >= poolMax
	p.next++
	to := p.prefix + strconv.Itoa(p.next)
	p.mu.Unlock()
	if full {
		return false
	}
	q := pgdump.QuoteIdent(name)
	for _, stmt := range []string{
		"ALTER DATABASE " + q + " WITH ALLOW_CONNECTIONS true CONNECTION LIMIT -1",
		"ALTER DATABASE " + q + " OWNER TO CURRENT_USER",
		"COMMENT ON DATABASE " + q + " IS NULL",
		"ALTER DATABASE " + q + " RESET ALL",
	} {
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			return false
		}
	}
	if !emptyDatabase(ctx, pg, name) {
		return false
	}
	if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+q+" RENAME TO "+pgdump.QuoteIdent(to)); err != nil {
		return false
	}
	p.mu.Lock()
	p.free = append(p.free, to)
	p.mu.Unlock()
	return true
}

// emptyDatabase drops every table and sequence of the public schema and
// reports whether the database is then as CREATE DATABASE makes it: no
// other schema, relation, extension, function or type of its own.
func emptyDatabase(ctx context.Context, pg pgdump.Conn, name string) bool {
	var extra int
	err := withSession(ctx, pg, name, func(db *sql.Conn) error {
		var drops []string
		rows, err := db.QueryContext(ctx, `SELECT format('DROP %s IF EXISTS public.%I CASCADE', CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S', 'v', 'm')`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return err
			}
			drops = append(drops, s)
		}
		rows.Close()
		for _, s := range drops {
			if _, err := db.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		// What CREATE DATABASE gives: the public schema and plpgsql
		// only, nothing in pg_class outside the system schemas.
		return db.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM pg_namespace WHERE nspname NOT IN ('public', 'information_schema') AND nspname NOT LIKE 'pg\_%') +
			(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')) +
			(SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') +
			(SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public') +
			(SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public')`).Scan(&extra)
	})
	return err == nil && extra == 0
}

func databasesLike(ctx context.Context, admin *sql.DB, marker string) ([]string, error) {
	rows, err := admin.QueryContext(ctx, `SELECT datname FROM pg_database WHERE strpos(datname, $1) > 0 ORDER BY datname`, marker)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// dropPools drops the pooled databases of this process (all) and of
// processes that are gone (stale), never those of another running test.
func dropPools(pg pgdump.Conn, all bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pg.Open(ctx, "postgres")
	if err != nil {
		return
	}
	defer admin.Close()
	names, err := databasesLike(ctx, admin, poolMarker)
	if err != nil {
		return
	}
	for _, n := range names {
		pid, _, ok := strings.Cut(strings.TrimPrefix(n, poolMarker), "_")
		if !strings.HasPrefix(n, poolMarker) || !ok {
			continue
		}
		mine := pid == strconv.Itoa(os.Getpid())
		if _, err := os.Stat("/proc/" + pid); (mine && all) || (!mine && err != nil) {
			_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgdump.QuoteIdent(n)+" WITH (FORCE)")
		}
	}
	if all {
		pool.mu.Lock()
		pool.free = nil
		pool.mu.Unlock()
	}
}
