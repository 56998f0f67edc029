package mariadb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// ForeignKeyError is a database whose tables other databases' tables
// reference by foreign key: RENAME TABLE would rewrite those tables'
// definitions to point into the quarantine (InnoDB follows the rename),
// and purging the quarantine would then fail or leave them dangling.
type ForeignKeyError struct {
	Database string
	// From lists the referencing keys, as "`db`.`table` (constraint c,
	// references t)".
	From []string
}

func (e *ForeignKeyError) Error() string {
	return fmt.Sprintf("database %q is referenced by foreign keys of other databases' tables: %s", e.Database, strings.Join(e.From, "; "))
}

// Hint tells the operator what to do.
func (e *ForeignKeyError) Hint() string {
	return "nothing was moved; drop those foreign keys (or the referencing tables) first if the other databases are to live without this one, then run again"
}

// ForeignKeysInto lists the foreign keys of tables outside database name
// that reference a table of name.
func ForeignKeysInto(ctx context.Context, db *sql.DB, name string) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME
		FROM information_schema.REFERENTIAL_CONSTRAINTS
		WHERE BINARY UNIQUE_CONSTRAINT_SCHEMA = ? AND BINARY CONSTRAINT_SCHEMA <> ?
		ORDER BY CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME`, name, name)
	if err != nil {
		return nil, fmt.Errorf("list the foreign keys into %q: %w", name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var schema, table, constraint, ref string
		if err := rows.Scan(&schema, &table, &constraint, &ref); err != nil {
			return nil, fmt.Errorf("list the foreign keys into %q: %w", name, err)
		}
		out = append(out, fmt.Sprintf("%s.%s (constraint %s, references %s)", QuoteIdent(schema), QuoteIdent(table), QuoteIdent(constraint), QuoteIdent(ref)))
	}
	return out, rows.Err()
}

// RefuseIfReferenced returns a *ForeignKeyError when tables of other
// databases reference tables of name.
func RefuseIfReferenced(ctx context.Context, db *sql.DB, name string) error {
	fks, err := ForeignKeysInto(ctx, db, name)
	if err != nil {
		return err
	}
	if len(fks) > 0 {
		return &ForeignKeyError{Database: name, From: fks}
	}
	return nil
}
