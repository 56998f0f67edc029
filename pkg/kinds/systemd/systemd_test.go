package systemd_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/systemd"
)

func TestCheckTemplate(t *testing.T) {
	var k systemd.Kind
	assert.Equal(t, "", k.CheckTemplate("tracim@{name}.service"))
	for raw, want := range map[string]string{
		"{name}.service":         "needs a literal prefix",
		"tracim{name}.service":   "must end with a separator",
		"tracim@{name}":          "must end with a unit type",
		"tracim@{name}.service/": "characters not allowed",
	} {
		assert.Contains(t, k.CheckTemplate(raw), want, raw)
	}
}

func TestQuarantineSource(t *testing.T) {
	var k systemd.Kind
	_, ok := k.QuarantineSource(kind.State{Locator: "tracim@acme.service"})
	assert.False(t, ok, "a unit known to systemctl only has nothing to move")
	from, ok := k.QuarantineSource(kind.State{Locator: "tracim@acme.service", UnitFile: "/etc/systemd/system/multi-user.target.wants/tracim@acme.service"})
	assert.True(t, ok)
	assert.Equal(t, "tracim@acme.service", k.MoveLocator(kind.Move{From: from}))
}
