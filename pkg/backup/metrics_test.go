package backup_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/backup"
)

// parsePrometheus parses a textfile with the official Python client's
// parser, as a scrape would, and returns samples as "name{labels}" -> value.
func parsePrometheus(t *testing.T, path string) map[string]float64 {
	t.Helper()
	py := filepath.Join(fleettest.RepoRoot(), ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		if os.Getenv("FLEETSAFE_REQUIRE_ANSIBLE") == "1" {
			t.Fatal("the project virtualenv is required; run `make venv`")
		}
		t.Skip("no project virtualenv; run `make venv`")
	}
	script := `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    assert fam.type == "gauge", fam
    assert fam.documentation, fam
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[s.name + "{" + labels + "}"] = s.value
print(json.dumps(out))
`
	out, err := exec.Command(py, "-c", script, path).CombinedOutput()
	require.NoError(t, err, string(out))
	var samples map[string]float64
	require.NoError(t, json.Unmarshal(out, &samples))
	return samples
}

func TestMetrics_ParseAsPrometheusText(t *testing.T) {
	f, latest := backedUp(t, "acme", "globex")
	rewrite(t, latest["acme"]["database"], func(b []byte) []byte { return b[:len(b)-100] }, true)
	rep := verify(t, f, backup.Options{})
	path := filepath.Join(t.TempDir(), "fleetsafe.prom")
	require.NoError(t, rep.WriteMetrics(path))
	samples := parsePrometheus(t, path)
	app := "app=" + f.App
	assert.Equal(t, 2.0, samples["fleetsafe_backup_status{"+app+",component=database,instance=acme}"])
	assert.Equal(t, 0.0, samples["fleetsafe_backup_status{"+app+",component=database,instance=globex}"])
	assert.Equal(t, 0.0, samples["fleetsafe_backup_status{"+app+",component=logs,instance=acme}"])
	fi, err := os.Stat(latest["globex"]["data"])
	require.NoError(t, err)
	assert.Equal(t, float64(fi.Size()), samples["fleetsafe_backup_newest_size_bytes{"+app+",component=data,instance=globex}"])
	assert.Equal(t, float64(fi.ModTime().Unix()), samples["fleetsafe_backup_newest_timestamp_seconds{"+app+",component=data,instance=globex}"])
	assert.Equal(t, float64(rep.VerifiedAt.Unix()), samples["fleetsafe_backup_verify_timestamp_seconds{"+app+"}"])
	assert.Equal(t, 1.0, samples["fleetsafe_backup_verify_success{"+app+"}"])
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	assert.Empty(t, leftovers, "no temporary file left")

	// A failed run: success 0, the time of the run, nothing else.
	require.NoError(t, backup.WriteFailedRunMetrics(path, f.App, rep.VerifiedAt))
	samples = parsePrometheus(t, path)
	assert.Equal(t, map[string]float64{
		"fleetsafe_backup_verify_success{" + app + "}":           0,
		"fleetsafe_backup_verify_timestamp_seconds{" + app + "}": float64(rep.VerifiedAt.Unix()),
	}, samples)
}
