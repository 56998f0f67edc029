package instancerestore

import (
	"context"
	"os"
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
	assert.Contains(t, out["not_restored"], "data")
	assert.NotContains(t, out, "skipped", "Ansible owns skipped")

	out = call(t, f, "name", "acme", "archive_dir", archives, "source", "sometimes")
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], "value of source must be one of")
	out = call(t, f, "name", "acme", "archive_dir", archives, "components", []any{"nope"})
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], `no component "nope"`)
}

// A failed restore is failed, and still says what it did: here nothing,
// since the corrupted archive is refused before the live instance moves.
func TestRestore_ModuleFailureKeepsItsResult(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(context.Background(), f.Layout, softdelete.Request{Name: "acme", ArchiveDir: archives,
		Reason: "x", Options: f.Options()})
	require.NoError(t, err)
	out := call(t, f, "name", "acme", "archive_dir", archives)
	require.Equal(t, false, out["failed"], out["msg"])
	live := f.Snapshot(t, "acme")
	data, err := os.ReadFile(res.Archive.Path)
	require.NoError(t, err)
	data[len(data)/2] ^= 1
	require.NoError(t, os.WriteFile(res.Archive.Path, data, 0o600))
	out = call(t, f, "name", "acme", "archive_dir", archives, "force", true, "source", "archive")
	assert.Equal(t, true, out["failed"])
	assert.Equal(t, false, out["changed"])
	assert.Contains(t, out["msg"], "refusing to restore acme")
	assert.Contains(t, out["msg"], "the instance was not changed")
	assert.Equal(t, live, f.Snapshot(t, "acme"))
}
