package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

func (Kind) QuarantineSource(st kind.State) (string, bool) { return st.Locator, true }
func (Kind) MoveLocator(m kind.Move) string                { return m.From }
func (Kind) TrashNames(kind.Move) []string                 { return nil }
func (Kind) Tidy(kind.Move)                                {}

// QuarantineTarget names the quarantine database fstrash_<random part of
// the id>_<name>, cut at MariaDB's 64 characters.
func (Kind) QuarantineTarget(source, id string) string {
	return cut(mariadb.QuarantinePrefix + kind.ShortID(id) + "_" + source)
}

// cut shortens a database name to MariaDB's limit, in characters.
func cut(name string) string {
	if utf8.RuneCountInString(name) <= mariadb.MaxNameLen {
		return name
	}
	r := []rune(name)
	return strings.TrimRight(string(r[:mariadb.MaxNameLen]), " ")
}

// admin opens a pool on the server of env, without a current database.
func admin(ctx context.Context, env kind.Env) (*sql.DB, error) {
	return Conn(env).Open(ctx, "")
}

// Quarantine moves every table into the quarantine database with one
// RENAME TABLE, the views, routines, triggers and events kept there
// (mariadb.Quarantine); refused while clients are connected.
func (Kind) Quarantine(ctx context.Context, env kind.Env, m kind.Move) error {
	db, err := admin(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	return mariadb.Quarantine(ctx, db, m.From, m.To, nil)
}

// Unquarantine moves the tables back and recreates the other objects from
// the definitions the quarantine keeps (mariadb.Restore).
func (Kind) Unquarantine(ctx context.Context, env kind.Env, m kind.Move) error {
	db, err := admin(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	return mariadb.Restore(ctx, db, m.To, m.From, nil)
}

// Held reports whether the quarantine database exists and is not being
// purged.
func (Kind) Held(ctx context.Context, env kind.Env, m kind.Move) (bool, error) {
	db, err := admin(ctx, env)
	if err != nil {
		return false, err
	}
	defer db.Close()
	ok, err := mariadb.Exists(ctx, db, m.To)
	if err != nil || !ok {
		return false, err
	}
	purging, err := mariadb.Purging(ctx, db, m.To)
	return !purging, err
}

// CompareQuarantined loads the archived dump into a scratch database and
// compares it with the quarantine: every table's structure and rows
// (mariadb-dump of both), and the views, routines, triggers and events
// the quarantine keeps (mariadb.CompareWithDump).
func (Kind) CompareQuarantined(ctx context.Context, env kind.Env, m kind.Move, dump string) (string, error) {
	f, err := os.Open(dump)
	if err != nil {
		return fmt.Sprintf("its archived dump cannot be read (%v)", err), nil
	}
	defer f.Close()
	why, err := mariadb.CompareWithDump(ctx, Conn(env), m.To, m.From, f)
	if err != nil {
		// The quarantine was only read (or given its archived counters):
		// nothing to leave as it was.
		return fmt.Sprintf("it cannot be compared with its archived dump (%v)", err), nil
	}
	return why, nil
}

func (Kind) PurgeLabel() string { return "database" }

// PurgeCheck refuses a name outside the quarantine namespace, and a
// database that carries no proof fleetsafe made it by moving m.From
// (mariadb.CheckOwned); gone when the quarantine database does not exist.
func (Kind) PurgeCheck(ctx context.Context, env kind.Env, m kind.Move) (bool, error) {
	if !strings.HasPrefix(m.To, mariadb.QuarantinePrefix) {
		return false, fmt.Errorf("%s is not a quarantine database name", m.To)
	}
	db, err := admin(ctx, env)
	if err != nil {
		return false, err
	}
	defer db.Close()
	// A purge killed during its DROP DATABASE leaves the server dropping:
	// wait for it, rather than race with it.
	if err := mariadb.WaitDropped(ctx, db, m.To); err != nil {
		return false, err
	}
	ok, err := mariadb.Exists(ctx, db, m.To)
	if err != nil || !ok {
		return !ok, err
	}
	return false, mariadb.CheckOwned(ctx, db, m.To, m.From)
}

// PurgeMark marks the quarantine database as being purged (its comment),
// so that a purge stopped half-way (DROP DATABASE drops table after
// table) never leaves it looking intact.
func (Kind) PurgeMark(ctx context.Context, env kind.Env, m kind.Move) error {
	db, err := admin(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := mariadb.WaitDropped(ctx, db, m.To); err != nil {
		return err
	}
	return mariadb.MarkPurging(ctx, db, m.To)
}

// PurgeRemove drops the quarantine database.
func (Kind) PurgeRemove(ctx context.Context, env kind.Env, m kind.Move) error {
	db, err := admin(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := mariadb.WaitDropped(ctx, db, m.To); err != nil {
		return err
	}
	_, err = mariadb.Purge(ctx, db, m.To)
	return err
}

func (Kind) PurgeLeft(m kind.Move) string { return "database " + m.To + " (marked as being purged)" }
