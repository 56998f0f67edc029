package fleettest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// RequireMariaDB returns how to reach the local MariaDB server (Debian's
// socket, as the current user), or skips the test when it is unreachable
// and FLEETSAFE_REQUIRE_MARIADB is not 1 (make test sets it, after
// scripts/mariadb-up.sh).
func RequireMariaDB(tb testing.TB) mariadb.Conn {
	tb.Helper()
	c := mariadb.Conn{}
	// A minute: a server that is up answers at once, but seconds late on
	// a loaded machine, and a slow answer is no absence.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := c.Open(ctx, "")
	if err != nil {
		if os.Getenv("FLEETSAFE_REQUIRE_MARIADB") == "1" {
			tb.Fatalf("MariaDB is required (FLEETSAFE_REQUIRE_MARIADB=1) but unreachable: %v; run scripts/mariadb-up.sh", err)
		}
		tb.Skipf("MariaDB unreachable (%v); scripts/mariadb-up.sh starts it, FLEETSAFE_REQUIRE_MARIADB=1 fails instead", err)
	}
	db.Close()
	return c
}
