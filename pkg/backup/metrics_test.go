package backup_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
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
for fam in text_string_to_metric_families(open(sys.argv[1], encoding='utf-8', newline='').read()):
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
	resetNow()
	f, latest := backedUp(t, "acme", "globex")
	rewrite(t, latest["acme"]["database"], func(b []byte) []byte { return b[:len(b)-100] }, true)
	rep := verify(t, f, backup.Options{})
	path := filepath.Join(t.TempDir(), "fleetsafe.prom")
	require.NoError(t, rep.WriteMetrics(path))
	samples := parsePrometheus(t, path)
	app := "app=" + f.App
	assert.Equal(t, 2.0, samples["fleetsafe_backup_status{"+app+",component=database,name=acme}"])
	assert.Equal(t, 0.0, samples["fleetsafe_backup_status{"+app+",component=database,name=globex}"])
	assert.Equal(t, 0.0, samples["fleetsafe_backup_status{"+app+",component=logs,name=acme}"])
	fi, err := os.Stat(latest["globex"]["data"])
	require.NoError(t, err)
	assert.Equal(t, float64(fi.Size()), samples["fleetsafe_backup_newest_size_bytes{"+app+",component=data,name=globex}"])
	assert.Equal(t, float64(fi.ModTime().Unix()), samples["fleetsafe_backup_newest_timestamp_seconds{"+app+",component=data,name=globex}"])
	assert.Equal(t, float64(rep.VerifiedAt.Unix()), samples["fleetsafe_backup_verify_timestamp_seconds{"+app+"}"])
	assert.Equal(t, 1.0, samples["fleetsafe_backup_verify_success{"+app+"}"])
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	assert.Empty(t, leftovers, "no temporary file left")

	// A failed run: success 0, the time of the run, nothing else.
	require.NoError(t, backup.WriteFailedRunMetrics(path, f.App, rep.VerifiedAt, nil))
	samples = parsePrometheus(t, path)
	assert.Equal(t, map[string]float64{
		"fleetsafe_backup_verify_success{" + app + "}":           0,
		"fleetsafe_backup_verify_timestamp_seconds{" + app + "}": float64(rep.VerifiedAt.Unix()),
	}, samples)
}

// TestMetrics_Quarantine: the quarantine gauges parse as a scrape would
// read them, the counts are there even at zero, a deletion whose purge
// time has passed (or is exactly now) counts as due, a hostile label
// value is escaped, and a failed run still shows the quarantine.
func TestMetrics_Quarantine(t *testing.T) {
	resetNow()
	f, _ := backedUp(t, "acme")
	rep := verify(t, f, backup.Options{})
	at := rep.VerifiedAt
	q := &backup.Quarantine{ReadOK: true, Deletions: []backup.QuarantinedDeletion{
		{Name: "acme", ID: "20260101T000000Z-aa", State: "quarantined", DeletedAt: at.Add(-48 * time.Hour), PurgeAfter: at},
		{Name: "globex", ID: "20260102T000000Z-bb", State: "purging", DeletedAt: at.Add(-time.Hour), PurgeAfter: at.Add(-time.Minute)},
		{Name: "initech", ID: "x\"y\\z\nw", State: "quarantined", DeletedAt: at.Add(-time.Hour), PurgeAfter: at.Add(30 * 24 * time.Hour)},
	}}
	path := filepath.Join(t.TempDir(), "fleetsafe.prom")
	require.NoError(t, rep.WriteMetricsWith(path, backup.MetricsOptions{Quarantine: q}))
	samples := parsePrometheus(t, path)
	app := "app=" + f.App
	assert.Equal(t, 1.0, samples["fleetsafe_quarantine_read_success{"+app+"}"])
	assert.Equal(t, 3.0, samples["fleetsafe_quarantine_deletions{"+app+"}"])
	assert.Equal(t, 2.0, samples["fleetsafe_quarantine_purges_due{"+app+"}"], "due at purge_after itself and after it")
	assert.Equal(t, float64(at.Unix()), samples["fleetsafe_quarantine_purge_after_timestamp_seconds{"+app+",name=acme,state=quarantined,tombstone=20260101T000000Z-aa}"])
	assert.Equal(t, float64(at.Add(-48*time.Hour).Unix()), samples["fleetsafe_quarantine_deleted_timestamp_seconds{"+app+",name=acme,state=quarantined,tombstone=20260101T000000Z-aa}"])
	assert.Equal(t, float64(at.Add(30*24*time.Hour).Unix()), samples["fleetsafe_quarantine_purge_after_timestamp_seconds{"+app+",name=initech,state=quarantined,tombstone=x\"y\\z\nw}"])
	assert.Equal(t, 1.0, samples["fleetsafe_backup_verify_success{"+app+"}"], "the backup metrics are still there")

	// Nothing quarantined: the counts say 0, no per-deletion series.
	require.NoError(t, rep.WriteMetricsWith(path, backup.MetricsOptions{Quarantine: &backup.Quarantine{ReadOK: true}}))
	samples = parsePrometheus(t, path)
	assert.Equal(t, 0.0, samples["fleetsafe_quarantine_deletions{"+app+"}"])
	assert.Equal(t, 0.0, samples["fleetsafe_quarantine_purges_due{"+app+"}"])
	for k := range samples {
		assert.False(t, strings.HasPrefix(k, "fleetsafe_quarantine_purge_after"), k)
	}

	// A tombstone could not be read; a failed run: both still show what is known.
	q.ReadOK = false
	require.NoError(t, backup.WriteFailedRunMetrics(path, f.App, at, q))
	samples = parsePrometheus(t, path)
	assert.Equal(t, 0.0, samples["fleetsafe_quarantine_read_success{"+app+"}"])
	assert.Equal(t, 0.0, samples["fleetsafe_backup_verify_success{"+app+"}"])
	assert.Equal(t, 3.0, samples["fleetsafe_quarantine_deletions{"+app+"}"])
	assert.Contains(t, samples, "fleetsafe_quarantine_purge_after_timestamp_seconds{"+app+",name=globex,state=purging,tombstone=20260102T000000Z-bb}")
}

// TestMetrics_NoTargetLabel: no label of any series the code writes is
// one that Prometheus sets on every scraped series (instance, job) or
// reserves (__*): such a label is renamed exported_<label> under the
// default honor_labels: false, and every rule written against it would
// silently never match.
func TestMetrics_NoTargetLabel(t *testing.T) {
	resetNow()
	f, latest := backedUp(t, "acme", "globex")
	rewrite(t, latest["acme"]["database"], func(b []byte) []byte { return b[:len(b)-100] }, true)
	rep := verify(t, f, backup.Options{})
	q := &backup.Quarantine{ReadOK: true, Deletions: []backup.QuarantinedDeletion{
		{Name: "initech", ID: "20260101T000000Z-aa", State: "quarantined", DeletedAt: rep.VerifiedAt, PurgeAfter: rep.VerifiedAt}}}
	dir := t.TempDir()
	good, failed := filepath.Join(dir, "good.prom"), filepath.Join(dir, "failed.prom")
	require.NoError(t, rep.WriteMetricsWith(good, backup.MetricsOptions{Rules: f.Layout.Backups, Quarantine: q}))
	require.NoError(t, backup.WriteFailedRunMetrics(failed, f.App, rep.VerifiedAt, q))
	n := 0
	for _, p := range []string{good, failed} {
		for series := range parsePrometheus(t, p) {
			n++
			labels := series[strings.Index(series, "{")+1 : len(series)-1]
			for _, kv := range strings.Split(labels, ",") {
				k, _, _ := strings.Cut(kv, "=")
				assert.NotContains(t, []string{"instance", "job"}, k, series)
				assert.False(t, strings.HasPrefix(k, "__") || strings.HasPrefix(k, "exported_"), series)
			}
		}
	}
	assert.Greater(t, n, 10)
}

// TestMetrics_MaxAgeFollowsTheLayout: the stale alert compares a backup's
// age with fleetsafe_backup_max_age_seconds, the smallest max_age of the
// component's rules; a component whose rules set none has no such series
// (the alert then falls back to 26 h).
func TestMetrics_MaxAgeFollowsTheLayout(t *testing.T) {
	resetNow()
	f, _ := backedUp(t, "acme")
	rep := verify(t, f, backup.Options{})
	rules := []instance.BackupRule{{Component: "data", MaxAge: 48 * time.Hour}, {Component: "data", MaxAge: 2 * time.Hour},
		{Component: "config"}, {Component: "database", MaxAge: 26 * time.Hour}}
	path := filepath.Join(t.TempDir(), "fleetsafe.prom")
	require.NoError(t, rep.WriteMetricsWith(path, backup.MetricsOptions{Rules: rules}))
	samples := parsePrometheus(t, path)
	app := "app=" + f.App
	assert.Equal(t, 7200.0, samples["fleetsafe_backup_max_age_seconds{"+app+",component=data,name=acme}"])
	assert.Equal(t, 93600.0, samples["fleetsafe_backup_max_age_seconds{"+app+",component=database,name=acme}"])
	assert.NotContains(t, samples, "fleetsafe_backup_max_age_seconds{"+app+",component=config,name=acme}")
	assert.NotContains(t, samples, "fleetsafe_backup_max_age_seconds{"+app+",component=logs,name=acme}")
}
