package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

var _ kind.RetentionKeeper = Kind{}

// retentionComment is the comment of a quarantine database (fleetsafe
// creates it; the instance's own comment is kept in its definitions):
// the deletion's retention. A purge replaces it with
// mariadb.PurgingComment.
type retentionComment struct {
	Retention kind.Retention `json:"fleetsafe_quarantine"`
}

// KeepRetention records r as the comment of the quarantine database.
func (Kind) KeepRetention(ctx context.Context, env kind.Env, m kind.Move, r kind.Retention) error {
	if !strings.HasPrefix(m.To, mariadb.QuarantinePrefix) {
		return fmt.Errorf("%s is not a quarantine database name", m.To)
	}
	data, err := json.Marshal(retentionComment{Retention: r})
	if err != nil {
		return err
	}
	db, err := admin(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	lit := "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(string(data)) + "'"
	if _, err := db.ExecContext(ctx, "ALTER DATABASE "+mariadb.QuoteIdent(m.To)+" COMMENT = "+lit); err != nil {
		return fmt.Errorf("record the retention of quarantine database %q in its comment: %w", m.To, err)
	}
	return nil
}

// Retention reads the record from the comment of the quarantine
// database; none once a purge marked it (mariadb.PurgingComment).
func (Kind) Retention(ctx context.Context, env kind.Env, m kind.Move) (kind.Retention, bool, string, error) {
	db, err := admin(ctx, env)
	if err != nil {
		return kind.Retention{}, false, "", err
	}
	defer db.Close()
	var c sql.NullString
	err = db.QueryRowContext(ctx, "SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE BINARY SCHEMA_NAME = ?", m.To).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return kind.Retention{}, false, "", nil
	}
	if err != nil {
		return kind.Retention{}, false, "", fmt.Errorf("read the comment of database %q: %w", m.To, err)
	}
	where := "the comment of database " + m.To
	var rc retentionComment
	if !strings.HasPrefix(c.String, `{"fleetsafe_quarantine"`) || json.Unmarshal([]byte(c.String), &rc) != nil || rc.Retention.Deletion == "" {
		return kind.Retention{}, false, where, nil
	}
	return rc.Retention, true, where, nil
}

// PurgeMarked reports whether a purge marked the quarantine database as
// being purged (its comment, the record, replaced by
// mariadb.PurgingComment): purge then finishes an interrupted purge
// without the record, which the mark replaced.
func (Kind) PurgeMarked(ctx context.Context, env kind.Env, m kind.Move) (bool, error) {
	db, err := admin(ctx, env)
	if err != nil {
		return false, err
	}
	defer db.Close()
	return mariadb.Purging(ctx, db, m.To)
}
