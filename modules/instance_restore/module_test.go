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

func call(t *testing.T, f *fleettest.Fleet, kv ...any) map[string]any {
	t.Helper()
	return f.CallModule(t, Module, kv...)
}

func TestRestore_Module(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	before := f.Snapshot(t, "acme")
	_, err := softdelete.Delete(context.Background(), f.Layout, softdelete.Request{Name: "acme", ArchiveDir: archives,
		Reason: "x", Options: f.Options()})
	require.NoError(t, err)

	out := call(t, f, "name", "acme", "archive_dir", archives, "_ansible_check_mode", true)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["changed"])
	assert.Equal(t, "quarantine", out["source"])

	out = call(t, f, "name", "acme", "archive_dir", archives, "components", "data,config")
	require.Equal(t, false, out["failed"], out["msg"])
	assert.ElementsMatch(t, []any{"data", "config"}, out["restored"])

	out = call(t, f, "name", "acme", "archive_dir", archives)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["changed"])
	assert.Equal(t, before, f.Snapshot(t, "acme"))

	out = call(t, f, "name", "acme", "archive_dir", archives)
	assert.Equal(t, false, out["changed"], "idempotent")

	out = call(t, f, "name", "acme", "archive_dir", archives, "source", "sometimes")
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], "value of source must be one of")
	out = call(t, f, "name", "acme", "archive_dir", archives, "components", []any{"nope"})
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], `no component "nope"`)
}
