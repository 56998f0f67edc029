package playbooks_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestFleetReport_ListsQuarantineAcrossTheFleet: after delete_instance.yml
// soft-deletes acme on web-a, fleet_report.yml lists it, across the
// fleet, with host, reason, who, archive and purge time, as its tombstone
// says; verify_backups.yml writes the quarantine into web-a's metrics
// file (labels app, name, never instance) and none into web-b's, which has no fleetsafe_archive_dir: the report
// names it rather than taking it for an empty quarantine.
func TestFleetReport_ListsQuarantineAcrossTheFleet(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	run := f.run(t, "playbooks/delete_instance.yml", map[string]any{"instance_name": "acme", "reason": "customer left",
		"fleetsafe_fetch_dir": t.TempDir(), "awx_user_name": "alice", "awx_job_id": 1234})
	require.NoError(t, run.Err, run.Output)
	tombs, _ := filepath.Glob(filepath.Join(f.archives, "web-a", "acme", "*.tombstone.json"))
	require.Len(t, tombs, 1)
	ts, err := softdelete.ReadTombstone(tombs[0])
	require.NoError(t, err)
	var output string

	// web-b has no fleetsafe_archive_dir from here on.
	inv, err := os.ReadFile(f.inv)
	require.NoError(t, err)
	lines := strings.Split(string(inv), "\n")
	var kept []string
	for _, l := range lines {
		if !strings.Contains(l, "fleetsafe_archive_dir") || !strings.Contains(l, filepath.Join(f.archives, "web-b")) {
			kept = append(kept, l)
		}
	}
	require.Len(t, kept, len(lines)-1)
	noArchiveB := filepath.Join(t.TempDir(), "inventory.yml")
	require.NoError(t, os.WriteFile(noArchiveB, []byte(strings.Join(kept, "\n")), 0o644))
	play := func(playbook string, vars map[string]any) {
		t.Helper()
		run := fleettest.RunPlaybookArgs(t, f.lib, []string{"-i", noArchiveB, playbook}, vars)
		require.NoError(t, run.Err, run.Output)
		output = run.Output
	}

	dir := t.TempDir()
	qfile, ifile := filepath.Join(dir, "quarantine.json"), filepath.Join(dir, "instances.json")
	play("playbooks/fleet_report.yml", map[string]any{"fleetsafe_quarantine_report_file": qfile, "fleetsafe_report_file": ifile})
	assert.Contains(t, output, "3 instances on 2 hosts")
	assert.Contains(t, output, "1 in quarantine, 0 due for purge; quarantine not listed on web-b (no fleetsafe_archive_dir")
	var rows []map[string]any
	data, err := os.ReadFile(qfile)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &rows))
	require.Len(t, rows, 1)
	row := rows[0]
	assert.Equal(t, "web-a", row["host"])
	assert.Equal(t, "acme", row["name"])
	assert.Equal(t, f.hosts["web-a"].App, row["app"])
	assert.Equal(t, "quarantined", row["state"])
	assert.Equal(t, "customer left", row["reason"])
	assert.NotEmpty(t, row["requested_by"])
	assert.Equal(t, ts.RequestedBy, row["requested_by"])
	assert.Equal(t, ts.ArchivePath, row["archive"])
	assert.FileExists(t, ts.ArchivePath)
	assert.Equal(t, tombs[0], row["tombstone"])
	assert.Contains(t, row["purge_after"], ts.PurgeAfter.UTC().Format("2006-01-02T15:04:05"))
	assert.Equal(t, false, row["purge_due"])
	data, err = os.ReadFile(ifile)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(strings.TrimSpace(string(data)), "["), "the instances report keeps its format")

	play("playbooks/verify_backups.yml", map[string]any{"fail_on": "never", "fleetsafe_metrics_file": dir + "/{{ inventory_hostname }}.prom"})
	a, err := os.ReadFile(filepath.Join(dir, "web-a.prom"))
	require.NoError(t, err)
	app := `app="` + f.hosts["web-a"].App + `"`
	assert.Contains(t, string(a), "fleetsafe_quarantine_deletions{"+app+"} 1\n")
	assert.Contains(t, string(a), `fleetsafe_quarantine_purge_after_timestamp_seconds{`+app+`,name="acme",tombstone="`+ts.ID+`",state="quarantined"}`)
	assert.NotContains(t, string(a), "instance=")
	b, err := os.ReadFile(filepath.Join(dir, "web-b.prom"))
	require.NoError(t, err)
	assert.Contains(t, string(b), "fleetsafe_backup_verify_success{")
	assert.NotContains(t, string(b), "fleetsafe_quarantine_", "no archive_dir: no quarantine claimed, not an empty one")
}
