// Package fleettest generates real fleets for tests and the demo: instance
// directories with files, systemd unit trees and PostgreSQL databases on the
// real server.
package fleettest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// RequirePG returns connection parameters for the local PostgreSQL server.
// When the server cannot be reached the test is skipped, or fails when
// FLEETSAFE_REQUIRE_PG=1 (as `make test` sets).
func RequirePG(tb testing.TB) pgdump.Conn {
	tb.Helper()
	conn := pgdump.Conn{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := conn.Open(ctx, "postgres")
	if err != nil {
		if os.Getenv("FLEETSAFE_REQUIRE_PG") == "1" {
			tb.Fatalf("PostgreSQL is required (FLEETSAFE_REQUIRE_PG=1) but unreachable: %v; run `make pg`", err)
		}
		tb.Skipf("PostgreSQL unreachable (%v); set FLEETSAFE_REQUIRE_PG=1 to fail instead", err)
	}
	db.Close()
	return conn
}

// New generates a fleet in a temporary directory for a test and removes its
// databases when the test ends.
func New(tb testing.TB, db bool, names ...string) *Fleet {
	tb.Helper()
	return NewSpec(tb, Spec{Names: names, DB: db})
}

// NewSpec is New with every setting of Spec; Root, App and PG are filled
// in when empty.
func NewSpec(tb testing.TB, s Spec) *Fleet {
	tb.Helper()
	if s.Root == "" {
		s.Root = tb.TempDir()
	}
	if s.App == "" {
		s.App = RandomApp()
	}
	if s.DB {
		s.PG = RequirePG(tb)
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := DropDatabasesLike(ctx, s.PG, s.App); err != nil {
				tb.Errorf("drop test databases: %v", err)
			}
		})
	}
	f, err := Generate(context.Background(), s)
	if err != nil {
		tb.Fatalf("generate fleet: %v", err)
	}
	return f
}
