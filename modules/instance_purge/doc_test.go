package instancepurge

import (
	"testing"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// The sidecar doc documents every parameter of the arg spec (layouts_dir
// included), with its type, default and aliases, and nothing else.
func TestDocOptionsMatchSpec(t *testing.T) {
	fleettest.CheckDocOptions(t, Module.Name, Module.Spec)
}
