package fleettest

import (
	"context"

	"github.com/fleetsafe/fleetsafe/internal/fleetgen"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// Spec says what fleet to generate (fleetgen.Spec).
type Spec = fleetgen.Spec

// Fleet is a generated fleet (fleetgen.Fleet: its fields and methods) with
// the helpers that need package testing (Snapshot, CallModule).
type Fleet struct {
	*fleetgen.Fleet
}

// Generate creates the fleet on disk and in PostgreSQL (fleetgen.Generate).
func Generate(ctx context.Context, s Spec) (*Fleet, error) {
	f, err := fleetgen.Generate(ctx, s)
	if err != nil {
		return nil, err
	}
	return &Fleet{f}, nil
}

// RandomApp returns an application name unique to this run.
func RandomApp() string { return fleetgen.RandomApp() }

// LayoutYAML returns the layout of a generated fleet.
func LayoutYAML(root, app string, db bool) string { return fleetgen.LayoutYAML(root, app, db) }

// DropDatabasesLike drops every database whose name contains marker.
func DropDatabasesLike(ctx context.Context, pg pgdump.Conn, marker string) error {
	return fleetgen.DropDatabasesLike(ctx, pg, marker)
}
