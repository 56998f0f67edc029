package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

func TestPurge_Module(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	_, err := softdelete.Delete(context.Background(), f.Layout, softdelete.Request{Name: "acme", ArchiveDir: archives,
		Reason: "x", RetentionDays: 30, Options: f.Options()})
	require.NoError(t, err)
	out := Module.Call(context.Background(), map[string]any{"archive_dir": archives})
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, false, out["changed"], "nothing is due before retention")

	out = Module.Call(context.Background(), map[string]any{"archive_dir": archives, "keep_last": "0"})
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], "keep_last below 1 is only accepted together with an explicit name")

	out = Module.Call(context.Background(), map[string]any{"archive_dir": archives, "name": "acme", "keep_last": "0",
		"_ansible_check_mode": true})
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["changed"])
	assert.Contains(t, out["msg"], "would purge 1")
}
