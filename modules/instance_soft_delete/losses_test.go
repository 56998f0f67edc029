package instancesoftdelete

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
)

// TestModule_LossesBounded: more accepted losses of one kind than the
// result lists (30 named pipes, 20 listed): the refusal names 20 and "and
// 10 more" with the exact count; accepted, losses holds the first 20 in
// path order, loss_counts and losses_total count all 30, the warnings name
// the 20 and the 10 more, and the archive's manifest (losses) all 30.
func TestModule_LossesBounded(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	var fifos []string
	for i := range 30 {
		p := filepath.Join(f.Path("data", "acme"), fmt.Sprintf("queue-%02d", i))
		require.NoError(t, syscall.Mkfifo(p, 0o600))
		fifos = append(fifos, p)
	}
	out := call(t, f, "name", "acme", "archive_dir", archives, "reason", "x")
	assert.Equal(t, true, out["failed"])
	msg, _ := out["msg"].(string)
	assert.Contains(t, msg, "30 entries cannot be archived whole")
	assert.Contains(t, msg, "30 special_files in data")
	assert.Contains(t, msg, fifos[19]+" is a named pipe (FIFO); and 10 more")
	assert.NotContains(t, msg, fifos[20])

	out = call(t, f, "name", "acme", "archive_dir", archives, "reason", "x", "accept_losses", []any{"special_files"})
	require.Equal(t, false, out["failed"], out["msg"])
	losses := out["losses"].([]any)
	require.Len(t, losses, 20)
	for i, l := range losses {
		assert.Equal(t, fifos[i], l.(map[string]any)["path"])
	}
	assert.EqualValues(t, 30, out["losses_total"])
	assert.Equal(t, []any{map[string]any{"component": "data", "kind": "special_files", "count": float64(30)}}, out["loss_counts"])
	warnings := strings.Join(toStrings(out["warnings"]), "\n")
	assert.Contains(t, warnings, fifos[19])
	assert.NotContains(t, warnings, fifos[20])
	assert.Contains(t, warnings, "accepted loss (special_files): 10 more in component data")
	m, err := archive.VerifyArchive(context.Background(), out["archive"].(map[string]any)["path"].(string))
	require.NoError(t, err)
	require.Len(t, m.Losses, 30)
	for i, l := range m.Losses {
		assert.Equal(t, fifos[i], l.Path)
	}
}
