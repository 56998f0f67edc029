package postgresql

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/lib/pq"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// Staging is the name a database is restored under before it is renamed
// into place: stable for one component of one instance, and carrying the
// final name (truncated to PostgreSQL's 63 bytes) so that an operator
// sees what it is.
func (Kind) Staging(t kind.Target) string {
	n := StagingPrefix + kind.StagingID(t.App, t.Instance+"\x00"+t.Component.Name) + "_" + t.Component.Template.Expand(t.Instance)
	if len(n) > MaxDatabaseName {
		n = n[:MaxDatabaseName]
	}
	return n
}

// Stage restores the dump into the staging database, as a temporary
// unprivileged role that owns it (stagerole.go): the dump's content never
// runs as the module's role. The database-level entries of the archive
// (ACL, settings, comment) are applied to it, and it is handed to the
// owner its DATABASE entry names. A failed restore drops what it
// half-created.
func (k Kind) Stage(ctx context.Context, env kind.Env, t kind.Target, dump string) (string, error) {
	stage := k.Staging(t)
	f, err := os.Open(dump)
	if err != nil {
		return "", fmt.Errorf("restore component %s: %w", t.Component.Name, err)
	}
	entries, err := pgdump.ReadDatabaseEntries(f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("restore component %s: read the table of contents of %s: %w", t.Component.Name, dump, err)
	}
	u := unprivilegedRun{
		content: func(ctx context.Context, rc pgdump.Conn, db string) error {
			return pgdump.RestoreExcept(ctx, rc, db, dump, defACLIDs(entries))
		},
		entries:       entries,
		owners:        func() dumpOwners { return ownerOf(entries.ObjectOwners) },
		owner:         t.Component.OwnerFor(t.Instance),
		keepOwnership: true,
		defACL: func() []string {
			var out []string
			for _, d := range entries.DefaultACL {
				out = append(out, d.SQL)
			}
			return out
		},
	}
	return stageWith(ctx, env, t, stage, u)
}

// defACLIDs are the dump ids of the archive's DEFAULT ACL entries, which
// the restore role may not run (defacl.go).
func defACLIDs(e *pgdump.DatabaseEntries) []int64 {
	var ids []int64
	for _, d := range e.DefaultACL {
		ids = append(ids, d.ID)
	}
	return ids
}

// stageWith runs u into the staging database stage and drops the
// staging database when it fails.
func stageWith(ctx context.Context, env kind.Env, t kind.Target, stage string, u unprivilegedRun) (string, error) {
	pg := Conn(env)
	create := func(ctx context.Context, owner string) error { return createStagingDatabase(ctx, pg, stage, owner) }
	notes := func(s string) { env.Note("%s", s) }
	if err := runUnprivileged(ctx, pg, stage, t.Locator, create, u, notes); err != nil {
		if _, derr := dropStagingDatabase(ctx, pg, stage); derr != nil {
			return stage, fmt.Errorf("restore component %s into staging database %s: %w; dropping the half-restored staging database also failed: %v", t.Component.Name, stage, err, derr)
		}
		return "", fmt.Errorf("restore component %s into staging database %s: %w (the half-restored staging database was dropped; %s was never created)", t.Component.Name, stage, err, t.Locator)
	}
	return stage, nil
}

// PutInPlace renames the staging database to its final name; the rename
// fails when a database of that name exists.
func (Kind) PutInPlace(ctx context.Context, env kind.Env, t kind.Target, staged string) error {
	db, err := Conn(env).Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "ALTER DATABASE "+pgdump.QuoteIdent(staged)+" RENAME TO "+pgdump.QuoteIdent(t.Locator)); err != nil {
		return fmt.Errorf("rename staging database %s to %s: %w", staged, t.Locator, err)
	}
	return nil
}

// DropStaging drops a staging database that was not put in place.
func (Kind) DropStaging(ctx context.Context, env kind.Env, staged string, placed bool) error {
	if placed {
		return nil
	}
	_, err := dropStagingDatabase(ctx, Conn(env), staged)
	return err
}

// CleanStaging drops the staging database a killed restore left.
func (k Kind) CleanStaging(ctx context.Context, env kind.Env, t kind.Target) (bool, error) {
	return dropStagingDatabase(ctx, Conn(env), k.Staging(t))
}

// createStagingDatabase creates a staging database. The instance's lock is
// held, so a database of that name is a leftover of a killed restore of
// this very instance: its CREATE DATABASE can still be committing on the
// server after the killed client is gone, so that CleanStaging did not see
// it yet. Such a leftover is dropped and the creation tried again.
func createStagingDatabase(ctx context.Context, pg pgdump.Conn, name, owner string) error {
	db, err := pg.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	for attempt := 0; ; attempt++ {
		_, err := db.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(name)+" OWNER "+pgdump.QuoteIdent(owner))
		if err == nil {
			return nil
		}
		var pqe *pq.Error
		// 42P04: it exists; 23505: another CREATE of it is still committing.
		if attempt >= 5 || !errors.As(err, &pqe) || (pqe.Code != "42P04" && pqe.Code != "23505") {
			return fmt.Errorf("create staging database %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
		if _, derr := dropStagingDatabase(ctx, pg, name); derr != nil {
			return fmt.Errorf("create staging database %s: %w; dropping the leftover of a killed restore failed: %v", name, err, derr)
		}
	}
}

// dropStagingDatabase drops a staging database if it exists, closing any
// session (a pg_restore orphaned by a killed run) first.
func dropStagingDatabase(ctx context.Context, pg pgdump.Conn, name string) (bool, error) {
	db, err := pg.Open(ctx, "postgres")
	if err != nil {
		return false, err
	}
	defer db.Close()
	ok, err := databaseExists(ctx, db, name)
	if err != nil || !ok {
		return false, err
	}
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgdump.QuoteIdent(name)+" WITH (FORCE)"); err != nil {
		return false, fmt.Errorf("drop staging database %s: %w", name, err)
	}
	return true, nil
}
