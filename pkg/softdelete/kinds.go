package softdelete

import (
	"fmt"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
)

// kindOf returns the kind of a component type; a type no kind registered
// (an edited tombstone or manifest) is an error naming it.
func kindOf(typ string) (kind.Kind, error) {
	k, ok := kind.Lookup(typ)
	if !ok {
		return nil, fmt.Errorf("unknown component type %q (known: %s)", typ, kind.TypeList())
	}
	return k, nil
}

// quarantineTarget is where a component of type typ goes when deletion id
// quarantines it (Kind.QuarantineTarget); "" for an unknown type.
func quarantineTarget(typ, from, id string) string {
	k, ok := kind.Lookup(typ)
	if !ok {
		return ""
	}
	return k.QuarantineTarget(from, id)
}

// move is the kind's view of a quarantine move.
func (m QuarantineMove) move() kind.Move { return kind.Move(m) }

// target is one component of the instance name of app, resolved by its
// kind once.
func target(app, name string, c kind.Component) (kind.Target, error) {
	k, err := kindOf(c.Type)
	if err != nil {
		return kind.Target{}, err
	}
	loc, err := k.Locate(c, name)
	if err != nil {
		return kind.Target{}, err
	}
	return kind.Target{App: app, Instance: name, Component: c, Locator: loc}, nil
}

// PurgingDatabase returns the name a quarantined database takes while it
// is being dropped (postgresql.PurgingName).
func PurgingDatabase(quarantined string) string { return postgresql.PurgingName(quarantined) }
