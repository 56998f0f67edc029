package postgresql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

var _ kind.RetentionKeeper = Kind{}

// retentionComment is the comment of a quarantined database: the
// deletion's retention, and the database's own comment from before,
// given back when it is renamed back.
type retentionComment struct {
	Retention kind.Retention `json:"fleetsafe_quarantine"`
	Comment   *string        `json:"comment"`
}

func parseRetentionComment(c sql.NullString) (retentionComment, bool) {
	var rc retentionComment
	if !c.Valid || !strings.HasPrefix(c.String, `{"fleetsafe_quarantine"`) {
		return rc, false
	}
	if err := json.Unmarshal([]byte(c.String), &rc); err != nil || rc.Retention.Deletion == "" {
		return rc, false
	}
	return rc, true
}

func databaseComment(ctx context.Context, db *sql.DB, name string) (c sql.NullString, found bool, err error) {
	err = db.QueryRowContext(ctx, "SELECT pg_catalog.shobj_description(d.oid, 'pg_database') FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) $1", name).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	return c, err == nil, err
}

// KeepRetention records r as the comment of the quarantined database,
// keeping the comment it had.
func (Kind) KeepRetention(ctx context.Context, env kind.Env, m kind.Move, r kind.Retention) error {
	db, err := Conn(env).Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	cur, found, err := databaseComment(ctx, db, m.To)
	if err != nil {
		return fmt.Errorf("read the comment of database %s: %w", m.To, err)
	}
	if !found {
		return fmt.Errorf("record the retention of database %s: it does not exist", m.To)
	}
	rc := retentionComment{Retention: r}
	if prev, ok := parseRetentionComment(cur); ok {
		rc.Comment = prev.Comment
	} else if cur.Valid {
		rc.Comment = &cur.String
	}
	data, err := json.Marshal(rc)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "COMMENT ON DATABASE "+pgdump.QuoteIdent(m.To)+" IS "+pqLiteral(string(data))); err != nil {
		return fmt.Errorf("record the retention of database %s in its comment: %w", m.To, err)
	}
	return nil
}

// Retention reads the record from the comment of the quarantined
// database, or of its purging name.
func (Kind) Retention(ctx context.Context, env kind.Env, m kind.Move) (kind.Retention, bool, string, error) {
	db, err := Conn(env).Open(ctx, "postgres")
	if err != nil {
		return kind.Retention{}, false, "", err
	}
	defer db.Close()
	for _, name := range []string{m.To, PurgingName(m.To)} {
		c, found, err := databaseComment(ctx, db, name)
		if err != nil {
			return kind.Retention{}, false, "", fmt.Errorf("read the comment of database %s: %w", name, err)
		}
		if !found {
			continue
		}
		rc, ok := parseRetentionComment(c)
		return rc.Retention, ok, "the comment of database " + name, nil
	}
	return kind.Retention{}, false, "", nil
}

// restoreComment gives a database renamed back its comment from before
// the quarantine.
func restoreComment(ctx context.Context, db *sql.DB, name string) error {
	c, found, err := databaseComment(ctx, db, name)
	if err != nil || !found {
		return err
	}
	rc, ok := parseRetentionComment(c)
	if !ok {
		return nil
	}
	q := "COMMENT ON DATABASE " + pgdump.QuoteIdent(name) + " IS NULL"
	if rc.Comment != nil {
		q = "COMMENT ON DATABASE " + pgdump.QuoteIdent(name) + " IS " + pqLiteral(*rc.Comment)
	}
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("give database %s back its comment: %w", name, err)
	}
	return nil
}
