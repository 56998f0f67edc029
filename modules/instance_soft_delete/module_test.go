package instancesoftdelete

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

func call(t *testing.T, f *fleettest.Fleet, kv ...any) map[string]any {
	t.Helper()
	return f.CallModule(t, Module, kv...)
}

func TestSoftDelete_CheckDiffThenRealThenIdempotent(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	out := call(t, f, "name", "acme", "archive_dir", archives, "reason", "left", "_ansible_check_mode", true, "_ansible_diff", true)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["changed"])
	plan := out["plan"].(map[string]any)
	assert.Greater(t, plan["files"].(float64), 5.0)
	assert.Contains(t, out["diff"].(map[string]any)["after"], "config")
	_, err := os.Stat(archives)
	assert.True(t, os.IsNotExist(err))

	out = call(t, f, "name", "acme", "archive_dir", archives, "reason", "left", "requested_by", "alice", "job_id", 77)
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["changed"])
	assert.Equal(t, true, out["archive"].(map[string]any)["verified"])
	ts := out["tombstone"].(map[string]any)

	out = call(t, f, "name", "acme", "archive_dir", archives, "reason", "left")
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, false, out["changed"])
	assert.Equal(t, ts["id"], out["tombstone"].(map[string]any)["id"])
}

func TestSoftDelete_AbsentNameIsNotAFailure(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	out := call(t, f, "name", "nobody", "archive_dir", t.TempDir(), "reason", "x")
	assert.Equal(t, false, out["failed"])
	assert.Equal(t, false, out["changed"])
}

func TestSoftDelete_RequiredParameters(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	out := call(t, f, "name", "acme", "archive_dir", t.TempDir())
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], "missing required arguments: reason")
}

func TestSoftDelete_SecretNeverInOutputs(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	const secret = "Sup3r-s3cret-pw"
	t.Setenv("PGPASSWORD", secret)
	out := call(t, f, "name", "acme", "archive_dir", archives, "reason", "left", "login_password", secret)
	require.Equal(t, false, out["failed"], out["msg"])
	buf, _ := json.Marshal(out)
	assert.NotContains(t, string(buf), secret)
	// Nor in anything written: archive (decompressed), sidecar, tombstone.
	err := filepath.WalkDir(archives, func(p string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.NotContains(t, string(data), secret, p)
		if strings.HasSuffix(p, ".tar.zst") {
			assert.NotContains(t, fleettest.Unzstd(t, data), secret)
		}
		return nil
	})
	require.NoError(t, err)
}
