package postgresql

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/childproc"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// TestFormats are pg_dump's custom format and plain SQL.
func (Kind) TestFormats() []string { return []string{"pg_custom", "pg_plain"} }

// TestRestore restores a backup into a scratch database
// (fleetsafe_verify_<random>), counts its rows and drops it whatever
// happens. The backup's content runs as a temporary unprivileged role
// that owns the scratch database (stagerole.go), never as the module's
// role.
func (Kind) TestRestore(ctx context.Context, env kind.Env, b kind.Backup) (map[string]int64, error) {
	pg := Conn(env)
	r := make([]byte, 6)
	_, _ = rand.Read(r)
	scratch := ScratchPrefix + hex.EncodeToString(r)
	admin, err := pg.Open(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	created := false
	defer func() {
		if !created {
			return
		}
		// Dropped even when ctx is cancelled or the restore failed.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(dctx, "DROP DATABASE IF EXISTS "+pgdump.QuoteIdent(scratch)+" WITH (FORCE)")
	}()
	var content func(ctx context.Context, rc pgdump.Conn, db string) error
	switch b.Format {
	case "pg_custom":
		// Without its default privileges, which the role may not run:
		// the scratch database is counted and dropped, they change no row.
		content = func(ctx context.Context, rc pgdump.Conn, db string) error {
			entries, err := readDatabaseEntries(b.File)
			if err != nil {
				return err
			}
			return pgdump.RestoreExcept(ctx, rc, db, b.File, defACLIDs(entries))
		}
	case "pg_plain":
		content = func(ctx context.Context, rc pgdump.Conn, db string) error { _, err := psql(ctx, rc, db, b); return err }
	default:
		return nil, fmt.Errorf("format %s cannot be test-restored into PostgreSQL", b.Format)
	}
	create := func(ctx context.Context, owner string) error {
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(scratch)+" OWNER "+pgdump.QuoteIdent(owner)); err != nil {
			return fmt.Errorf("create scratch database: %w", err)
		}
		created = true
		if b.Scratch != nil {
			b.Scratch(scratch)
		}
		return nil
	}
	if err := runUnprivileged(ctx, pg, scratch, "scratch", create, unprivilegedRun{content: content}, func(s string) { env.Note("%s", s) }); err != nil {
		return nil, err
	}
	got, err := tableCounts(ctx, pg, scratch)
	if err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	return got, nil
}

// psql runs a plain dump, through backup_verify's decompression and
// guard, then without its OWNER TO lines (ownerFilter), into db, as the
// connection rc (the temporary restore role). It returns the filter,
// which knows the owners the dump named.
func psql(ctx context.Context, rc pgdump.Conn, db string, b kind.Backup) (*ownerFilter, error) {
	if b.Plain == nil {
		return nil, fmt.Errorf("%s: no reader for a plain SQL backup", b.File)
	}
	in, refused, err := b.Plain()
	if err != nil {
		return nil, err
	}
	f := newOwnerFilter(in)
	// Last before psql: restricted mode under a key of our own
	// (restrictfilter.go), whatever the filters before it let through.
	rf, err := newRestrictFilter(b.File, f)
	if err != nil {
		_ = refused()
		return f, err
	}
	// The tool dies with the module (pkg/childproc): a killed restore
	// leaves no psql running the backup's content as the restore role.
	cmd := childproc.Command(ctx, "psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "--dbname="+pgdump.DBNameArg(db))
	cmd.Stdin = rf
	cmd.Env = rc.Env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = nil
	err = childproc.Run(cmd)
	if rerr := refused(); rerr != nil {
		return f, rerr
	}
	if rf.err != nil {
		return f, rf.err
	}
	if err != nil {
		if first, _, _ := strings.Cut(stderr.String(), "\n"); strings.Contains(first, `invalid command \restrict`) {
			return f, &PsqlTooOldError{File: b.File, Version: psqlVersion(ctx)}
		}
		return f, fmt.Errorf("psql -f %s: %w: %s", b.File, err, strings.TrimSpace(stderr.String()))
	}
	return f, nil
}

// PsqlTooOldError is a psql that does not know \restrict: it refused the
// first line fleetsafe sends, before any line of the dump, and the dump
// is never run without it.
type PsqlTooOldError struct {
	File    string
	Version string // psql --version, or "" when it did not answer
}

func (e *PsqlTooOldError) Error() string {
	v := e.Version
	if v == "" {
		v = "psql (version unknown)"
	}
	return fmt.Sprintf("%s: not restored: %s does not know \\restrict, and fleetsafe runs a plain dump only in psql's restricted mode (no psql command of the dump runs); nothing of the dump was run", e.File, v)
}

// Hint tells the operator what to do.
func (e *PsqlTooOldError) Hint() string {
	return "install a psql of 17.6, 16.10, 15.14 or 14.19 or later (the minor releases of August 2025, which know \\restrict) on the managed host, or restore from a pg_custom backup"
}

// psqlVersion is the first line psql --version writes, or "".
func psqlVersion(ctx context.Context) string {
	out, err := childproc.Output(childproc.Command(ctx, "psql", "--version"))
	if err != nil {
		return ""
	}
	v, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(v)
}

// LiveCounts counts the rows of every table of the live database.
func (Kind) LiveCounts(ctx context.Context, env kind.Env, locator string) (map[string]int64, error) {
	return tableCounts(ctx, Conn(env), locator)
}

// Gone says why a live database can no longer be read when it went away
// during the run: dropped or renamed, or closed to connections.
func (Kind) Gone(ctx context.Context, env kind.Env, locator string) string {
	admin, err := Conn(env).Open(ctx, "postgres")
	if err != nil {
		return ""
	}
	defer admin.Close()
	var allow bool
	switch err := admin.QueryRowContext(ctx, "SELECT datallowconn FROM pg_database WHERE datname = $1", locator).Scan(&allow); {
	case errors.Is(err, sql.ErrNoRows):
		return "was dropped or renamed"
	case err != nil:
		return ""
	case !allow:
		return "was closed to connections"
	}
	return ""
}

// tableCounts counts the rows of every ordinary table outside the system
// schemas.
func tableCounts(ctx context.Context, pg pgdump.Conn, db string) (map[string]int64, error) {
	conn, err := pg.Open(ctx, db)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`)
	if err != nil {
		return nil, err
	}
	var tables [][2]string
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, [2]string{s, t})
	}
	rows.Close()
	out := map[string]int64{}
	for _, t := range tables {
		var n int64
		q := "SELECT count(*) FROM " + pgdump.QuoteIdent(t[0]) + "." + pgdump.QuoteIdent(t[1])
		if err := conn.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return nil, err
		}
		out[t[0]+"."+t[1]] = n
	}
	return out, nil
}
