package mariadb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// Promise: a database is not moved from under a client that uses it by
// qualified names, whatever the client's current database (none, or
// another one), whether it reads or writes in an open transaction; an
// idle client that holds nothing does not block.
func TestQuarantine_RefusesAClientOfAnotherDatabaseHoldingItsTables(t *testing.T) {
	c, db := server(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, current, stmt string }{
		{"writer-no-default", "", "INSERT INTO %s.t VALUES (2)"},
		{"reader-other-default", "other", "SELECT COUNT(*) FROM %s.t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := suffix()
			name, other, q := "lk_"+s, "lk_"+s+"_other", mariadb.QuarantinePrefix+"lk_"+s
			dropAfter(t, db, name, other, q)
			exec(t, db, "CREATE DATABASE "+name, "CREATE DATABASE "+other,
				"CREATE TABLE "+name+".t (id INT PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO "+name+".t VALUES (1)")
			cur := ""
			if tc.current != "" {
				cur = other
			}
			cl, err := c.Open(ctx, cur)
			require.NoError(t, err)
			defer cl.Close()
			conn, err := cl.Conn(ctx)
			require.NoError(t, err)
			defer conn.Close()
			var id int64
			require.NoError(t, conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id))
			_, err = conn.ExecContext(ctx, "START TRANSACTION")
			require.NoError(t, err)
			_, err = conn.ExecContext(ctx, fmt.Sprintf(tc.stmt, name))
			require.NoError(t, err)

			err = mariadb.Quarantine(ctx, db, name, q, nil)
			var iu *mariadb.InUseError
			require.True(t, errors.As(err, &iu), "quarantine while connection %d holds %s's table: %v", id, name, err)
			require.Contains(t, err.Error(), fmt.Sprintf("connection %d ", id))
			ok, err := mariadb.Exists(ctx, db, q)
			require.NoError(t, err)
			require.False(t, ok, "the quarantine database was created")

			// Once the transaction is over, nothing holds the table.
			_, err = conn.ExecContext(ctx, "COMMIT")
			require.NoError(t, err)
			held, _, err := mariadb.Lockers(ctx, db, name)
			require.NoError(t, err)
			require.False(t, held, "an idle connection counted as holding the tables")
			require.NoError(t, mariadb.Quarantine(ctx, db, name, q, nil))
			ts, err := mariadb.Tables(ctx, db, q)
			require.NoError(t, err)
			require.True(t, len(ts) == 1 && strings.EqualFold(ts[0].Name, "t"), "%v", ts)
		})
	}
}
