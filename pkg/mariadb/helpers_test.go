package mariadb_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// server returns an admin pool on the local MariaDB, or skips the test
// when it is not running and FLEETSAFE_REQUIRE_MARIADB is not 1.
func server(t testing.TB) (mariadb.Conn, *sql.DB) {
	t.Helper()
	c := mariadb.Conn{}
	db, err := c.Open(context.Background(), "")
	if err != nil {
		if os.Getenv("FLEETSAFE_REQUIRE_MARIADB") == "1" {
			t.Fatalf("MariaDB required (FLEETSAFE_REQUIRE_MARIADB=1): %v; run scripts/mariadb-up.sh", err)
		}
		t.Skipf("no MariaDB (%v); scripts/mariadb-up.sh starts it", err)
	}
	t.Cleanup(func() { db.Close() })
	return c, db
}

func suffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// dropAfter drops the databases when the test ends, whatever happened.
func dropAfter(t testing.TB, db *sql.DB, names ...string) {
	t.Cleanup(func() {
		for _, n := range names {
			_, _ = db.Exec("DROP DATABASE IF EXISTS " + mariadb.QuoteIdent(n))
		}
	})
}

func exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		_, err := db.Exec(s)
		require.NoError(t, err, s)
	}
}

var dumpDate = regexp.MustCompile(`(?m)^-- Dump completed on .*$`)

// dumpOf dumps a database, without the date of its closing line.
func dumpOf(t testing.TB, c mariadb.Conn, name string) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, mariadb.Dump(context.Background(), c, name, &b))
	return dumpDate.ReplaceAllString(b.String(), "-- Dump completed")
}
