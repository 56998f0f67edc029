package mysql

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// Staging is the database a component is loaded into before its tables
// are moved into place: fsrestore_<id>_<name>, stable for one component
// of one instance, cut at 64 characters.
func (Kind) Staging(t kind.Target) string {
	return cut(mariadb.StagingPrefix + kind.StagingID(t.App, t.Instance+"\x00"+t.Component.Name) + "_" + t.Component.Template.Expand(t.Instance))
}

// Stage loads the verified dump into the staging database, checked to its
// end as it is loaded, and parks it (its views, routines, triggers and
// events kept, then dropped there); a failure drops it again.
func (k Kind) Stage(ctx context.Context, env kind.Env, t kind.Target, dump string) (string, error) {
	f, err := os.Open(dump)
	if err != nil {
		return "", err
	}
	defer f.Close()
	stage := k.Staging(t)
	if err := mariadb.StageDump(ctx, Conn(env), stage, t.Locator, f); err != nil {
		return "", fmt.Errorf("restore component %s into staging database %s: %w", t.Component.Name, stage, err)
	}
	return stage, nil
}

// PutInPlace moves the staged tables into the new database t.Locator with
// one RENAME TABLE and recreates the other objects (mariadb.PutInPlace);
// refused when a database of that name exists.
func (Kind) PutInPlace(ctx context.Context, env kind.Env, t kind.Target, staged string) error {
	db, err := admin(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	return mariadb.PutInPlace(ctx, db, staged, t.Locator)
}

// DropStaging drops a staging database that was not put in place (one
// put in place was dropped by the move).
func (Kind) DropStaging(ctx context.Context, env kind.Env, staged string, placed bool) error {
	if placed || !strings.HasPrefix(staged, mariadb.StagingPrefix) {
		return nil
	}
	db, err := admin(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+mariadb.QuoteIdent(staged))
	return err
}

// CleanStaging finishes a move into t.Locator that a killed run stopped
// half-way (from quarantine or from staging: the database says from
// where, and its source keeps the definitions), then drops the staging
// database a killed restore left.
func (k Kind) CleanStaging(ctx context.Context, env kind.Env, t kind.Target) (bool, error) {
	db, err := admin(ctx, env)
	if err != nil {
		return false, err
	}
	defer db.Close()
	found, err := mariadb.Finish(ctx, db, t.Locator)
	if err != nil {
		return found, fmt.Errorf("finish the restore of database %s that a killed run left half-way: %w", t.Locator, err)
	}
	stage := k.Staging(t)
	ok, err := mariadb.Exists(ctx, db, stage)
	if err != nil || !ok {
		return found, err
	}
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+mariadb.QuoteIdent(stage)); err != nil {
		return found, fmt.Errorf("drop staging database %s: %w", stage, err)
	}
	return true, nil
}
