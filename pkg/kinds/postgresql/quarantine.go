package postgresql

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

func (Kind) QuarantineSource(st kind.State) (string, bool) { return st.Locator, true }
func (Kind) MoveLocator(m kind.Move) string                { return m.From }
func (Kind) TrashNames(kind.Move) []string                 { return nil }
func (Kind) Tidy(kind.Move)                                {}

// QuarantineTarget renames the database fstrash_<random part of the
// id>_<name>, cut at 63 bytes.
func (Kind) QuarantineTarget(source, id string) string {
	name := QuarantinePrefix + kind.ShortID(id) + "_" + source
	if len(name) > MaxDatabaseName {
		name = name[:MaxDatabaseName]
	}
	return name
}

// Quarantine renames the database and closes it to connections.
func (Kind) Quarantine(ctx context.Context, env kind.Env, m kind.Move) error {
	return moveDatabase(ctx, Conn(env), m.From, m.To, false)
}

// Unquarantine renames the database back and reopens it.
func (Kind) Unquarantine(ctx context.Context, env kind.Env, m kind.Move) error {
	return moveDatabase(ctx, Conn(env), m.To, m.From, true)
}

// Held reports whether the quarantine database exists.
func (Kind) Held(ctx context.Context, env kind.Env, m kind.Move) (bool, error) {
	db, err := Conn(env).Open(ctx, "postgres")
	if err != nil {
		return false, err
	}
	defer db.Close()
	return databaseExists(ctx, db, m.To)
}

// moveDatabase renames a database; to quarantine it also closes it to
// connections, to restore it reopens it. Done moves are skipped.
func moveDatabase(ctx context.Context, pg pgdump.Conn, from, to string, allow bool) error {
	db, err := pg.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	fromOK, err := databaseExists(ctx, db, from)
	if err != nil {
		return err
	}
	toOK, err := databaseExists(ctx, db, to)
	if err != nil {
		return err
	}
	switch {
	case !fromOK && toOK:
	case !fromOK:
		return fmt.Errorf("database %s is gone and not at %s either", from, to)
	case toOK:
		return fmt.Errorf("both databases %s and %s exist; resolve by hand", from, to)
	default:
		if _, err := db.ExecContext(ctx, "ALTER DATABASE "+pgdump.QuoteIdent(from)+" RENAME TO "+pgdump.QuoteIdent(to)); err != nil {
			return fmt.Errorf("rename database %s to %s: %w", from, to, err)
		}
	}
	if _, err := db.ExecContext(ctx, fmt.Sprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS %t", pgdump.QuoteIdent(to), allow)); err != nil {
		return fmt.Errorf("database %s: %w", to, err)
	}
	if allow {
		// Renamed back: its own comment again, not the quarantine's
		// retention record.
		return restoreComment(ctx, db, to)
	}
	return nil
}

// PurgingName returns the name a quarantined database takes while it is
// being dropped.
func PurgingName(quarantined string) string {
	return PurgingPrefix + strings.TrimPrefix(quarantined, QuarantinePrefix)
}

func (Kind) PurgeLabel() string { return "database" }

// PurgeCheck refuses a name outside the quarantine namespace and a
// database present under both its quarantine and its purging name.
func (Kind) PurgeCheck(ctx context.Context, env kind.Env, m kind.Move) (bool, error) {
	if !strings.HasPrefix(m.To, QuarantinePrefix) {
		return false, fmt.Errorf("%s is not a quarantine database name", m.To)
	}
	db, err := Conn(env).Open(ctx, "postgres")
	if err != nil {
		return false, err
	}
	defer db.Close()
	intact, err := databaseExists(ctx, db, m.To)
	if err != nil {
		return false, err
	}
	purging, err := databaseExists(ctx, db, PurgingName(m.To))
	switch {
	case err != nil:
		return false, err
	case intact && purging:
		return false, fmt.Errorf("both databases %s and %s exist; compare and drop one by hand", m.To, PurgingName(m.To))
	}
	return !intact && !purging, nil
}

// PurgeMark renames a quarantined database to its purging name, so that a
// half-dropped database is never taken for a quarantine. Done renames are
// skipped.
func (Kind) PurgeMark(ctx context.Context, env kind.Env, m kind.Move) error {
	db, err := Conn(env).Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	name := m.To
	ok, err := databaseExists(ctx, db, name)
	if err != nil || !ok {
		return err
	}
	to := PurgingName(name)
	if _, err := db.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name); err != nil {
		return fmt.Errorf("disconnect database %s: %w", name, err)
	}
	if _, err := db.ExecContext(ctx, "ALTER DATABASE "+pgdump.QuoteIdent(name)+" RENAME TO "+pgdump.QuoteIdent(to)); err != nil {
		return fmt.Errorf("rename database %s to %s: %w", name, to, err)
	}
	return nil
}

// PurgeRemove drops the database under its purging name.
func (Kind) PurgeRemove(ctx context.Context, env kind.Env, m kind.Move) error {
	name := PurgingName(m.To)
	if !strings.HasPrefix(name, PurgingPrefix) {
		return fmt.Errorf("refusing to drop %s: not a database being purged", name)
	}
	db, err := Conn(env).Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgdump.QuoteIdent(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

func (Kind) PurgeLeft(m kind.Move) string { return "database " + PurgingName(m.To) }
