package mysql

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// dumpFile writes a mariadb-dump of database name to the new file path,
// synced.
func dumpFile(ctx context.Context, c mariadb.Conn, name, path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := mariadb.Dump(ctx, c, name, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return f.Close()
}

// stamp describes what a write to database name changes without reading
// its rows: each table with its update time (InnoDB and MyISAM keep it),
// and each view, routine, trigger and event with its statement.
func stamp(ctx context.Context, c mariadb.Conn, name string) (string, error) {
	db, err := c.Open(ctx, "")
	if err != nil {
		return "", err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME, TABLE_TYPE, COALESCE(CAST(CREATE_TIME AS CHAR), ''), COALESCE(CAST(UPDATE_TIME AS CHAR), '')
		FROM information_schema.TABLES WHERE BINARY TABLE_SCHEMA = ? ORDER BY TABLE_NAME`, name)
	if err != nil {
		return "", fmt.Errorf("read the tables of %q: %w", name, err)
	}
	var b strings.Builder
	for rows.Next() {
		var n, typ, created, updated string
		if err := rows.Scan(&n, &typ, &created, &updated); err != nil {
			rows.Close()
			return "", err
		}
		fmt.Fprintf(&b, "%q %s %s %s\n", n, typ, created, updated)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	defs, err := mariadb.ReadDefinitions(ctx, db, name)
	if err != nil {
		return "", err
	}
	for _, o := range defs.Objects {
		fmt.Fprintf(&b, "%s %q %q\n", o.Kind, o.Name, o.SQL)
	}
	return b.String(), nil
}
