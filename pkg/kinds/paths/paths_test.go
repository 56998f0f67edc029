package paths_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/paths"
)

func TestCheckTemplate(t *testing.T) {
	assert.Equal(t, "", paths.CheckTemplate("/srv/tracim/{name}/data"))
	for raw, want := range map[string]string{
		"srv/{name}":                   "absolute",
		"/srv/x/{name}/{name}":         "exactly once",
		"/srv/x/*/{name}":              "glob characters",
		"/srv/x/../{name}":             "'..'",
		"/srv/.fleetsafe-trash/{name}": "fleetsafe's own",
		"/srv/x//{name}":               "clean",
		"/srv/x/.{name}":               "must not start with '.'",
		"/srv/{name}":                  "system directory /srv",
	} {
		assert.Contains(t, paths.CheckTemplate(raw), want, raw)
	}
}

// A quarantine move goes into the deletion's trash in the parent, is
// skipped once done, refuses both sides present, and Tidy removes the
// emptied trash after a move back.
func TestQuarantineMoves(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	from := filepath.Join(parent, "acme")
	require.NoError(t, os.Mkdir(from, 0o755))
	k, ok := kind.Lookup(paths.TypeDir)
	require.True(t, ok)
	m := kind.Move{Type: paths.TypeDir, From: from, To: k.QuarantineTarget(from, "id1")}
	assert.Equal(t, filepath.Join(parent, ".fleetsafe-trash", "id1", "acme"), m.To)
	assert.Equal(t, []string{"acme"}, k.TrashNames(m))
	require.NoError(t, k.Quarantine(ctx, kind.Env{}, m))
	require.NoError(t, k.Quarantine(ctx, kind.Env{}, m), "done already")
	held, _ := k.Held(ctx, kind.Env{}, m)
	assert.True(t, held)
	require.NoError(t, os.Mkdir(from, 0o755))
	assert.ErrorContains(t, k.Unquarantine(ctx, kind.Env{}, m), "resolve by hand")
	require.NoError(t, os.Remove(from))
	require.NoError(t, k.Unquarantine(ctx, kind.Env{}, m))
	k.Tidy(m)
	_, err := os.Lstat(filepath.Join(parent, ".fleetsafe-trash"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.DirExists(t, from)
}

func TestPlaceholder(t *testing.T) {
	dir := t.TempDir()
	d, _ := kind.Lookup(paths.TypeDir)
	f, _ := kind.Lookup(paths.TypeFile)
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.Mkdir(empty, 0o755))
	assert.Contains(t, d.Placeholder(empty), "an empty directory")
	assert.Equal(t, "", f.Placeholder(empty), "a directory is no file placeholder")
	require.NoError(t, os.WriteFile(filepath.Join(empty, "x"), nil, 0o644))
	assert.Equal(t, "", d.Placeholder(empty), "not empty")
	assert.Contains(t, f.Placeholder(filepath.Join(empty, "x")), "an empty file")
}
