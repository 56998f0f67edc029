package playbooks_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// TestReleaseTarball_PlaybooksFromTheInstallAlone is the issue's "done
// when": the release tarball itself (`make collection`: release binaries,
// built without the test hooks), installed by the ansible-galaxy of the
// ansible-core under test (`make core-2.21`: 2.21 on Python 3.13) into an
// empty collections path, runs fleet_report.yml and a delete/restore round
// trip on a sandbox fleet of two hosts with real PostgreSQL databases.
// Nothing of the repository but the playbooks is used: no ansible.cfg (an
// empty one), no library path, no collections path but the install, no
// collection from Python's site-packages, and a working directory outside
// the repository. Each host's binary cache starts empty, so the binary that
// runs is the install's, copied by its action plugin (checked by sha256).
//
// The release binaries ignore FLEETSAFE_SYSTEMD_DIR, so the sandbox's
// layout has no systemd_unit component here.
func TestReleaseTarball_PlaybooksFromTheInstallAlone(t *testing.T) {
	t.Parallel()
	tarball := os.Getenv("FLEETSAFE_RELEASE_TARBALL")
	if tarball == "" {
		if os.Getenv("FLEETSAFE_REQUIRE_RELEASE_TARBALL") == "1" {
			t.Fatal("FLEETSAFE_RELEASE_TARBALL is required (FLEETSAFE_REQUIRE_RELEASE_TARBALL=1): the release tarball of `make collection`")
		}
		t.Skip("FLEETSAFE_RELEASE_TARBALL not set (`make core-2.21` sets it to the tarball of `make collection`)")
	}
	playbook := fleettest.AnsiblePlaybook(t)
	work := t.TempDir()
	colls := filepath.Join(work, "collections")
	require.NoError(t, fleettest.InstallCollection(tarball, colls))
	installed := filepath.Join(colls, "ansible_collections", "fleetsafe", "instances", "binaries", "linux_"+runtime.GOARCH, "fleetsafe")
	sum := fileSHA256(t, installed)

	// Two hosts: acme on web-a, globex on web-b, no systemd unit.
	hosts := map[string]*fleettest.Fleet{
		"web-a": fleettest.New(t, true, "acme"),
		"web-b": fleettest.New(t, true, "globex"),
	}
	archives := filepath.Join(work, "archives")
	var inv strings.Builder
	inv.WriteString("all:\n  hosts:\n")
	for _, h := range []string{"web-a", "web-b"} {
		f := hosts[h]
		withoutUnits(t, f)
		// A controller without the repository's ansible.cfg: the local
		// connection, this Python for ansible's own modules on the
		// controller (debug, copy), a cache of each host's own.
		fmt.Fprintf(&inv, "    %s:\n      ansible_connection: local\n      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n", h)
		fmt.Fprintf(&inv, "      fleetsafe_layout_file: %s\n      fleetsafe_archive_dir: %s\n      fleetsafe_cache_dir: %s\n",
			f.LayoutFile, filepath.Join(archives, h), filepath.Join(work, "cache", h))
	}
	invFile := filepath.Join(work, "inventory.yml")
	require.NoError(t, os.WriteFile(invFile, []byte(inv.String()), 0o644))
	cfg := filepath.Join(work, "ansible.cfg")
	require.NoError(t, os.WriteFile(cfg, []byte("[defaults]\n"), 0o644))
	emptyLib := filepath.Join(work, "library")
	require.NoError(t, os.Mkdir(emptyLib, 0o755))
	cwd := filepath.Join(work, "cwd")
	require.NoError(t, os.Mkdir(cwd, 0o755))

	play := func(name string, vars map[string]any) string {
		t.Helper()
		ev, err := json.Marshal(vars)
		require.NoError(t, err)
		cmd := exec.Command(playbook, "-i", invFile, "-e", string(ev), filepath.Join(fleettest.RepoRoot(), "playbooks", name))
		cmd.Dir = cwd
		cmd.Env = append(os.Environ(),
			"ANSIBLE_CONFIG="+cfg,
			"ANSIBLE_COLLECTIONS_PATH="+colls,
			"ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=False",
			"ANSIBLE_LIBRARY="+emptyLib,
			"ANSIBLE_LOCAL_TEMP="+t.TempDir(),
			"ANSIBLE_NOCOLOR=1",
			"ANSIBLE_LOCALHOST_WARNING=False",
		)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err = cmd.Run()
		require.NoError(t, err, "%s from the installed tarball:\n%s", name, out.String())
		t.Logf("%s: %.1f s", name, time.Since(start).Seconds())
		return out.String()
	}

	acme := hosts["web-a"].Snapshot(t, "acme")
	globex := hosts["web-b"].Snapshot(t, "globex")
	play("delete_instance.yml", map[string]any{"instance_name": "acme", "reason": "release tarball test"})
	_, err := hosts["web-a"].Layout.Resolve(t.Context(), "acme", hosts["web-a"].Options())
	var nf *instance.NotFoundError
	require.ErrorAs(t, err, &nf, "acme is quarantined")
	tombs, _ := filepath.Glob(filepath.Join(archives, "web-a", "acme", "*.tombstone.json"))
	require.Len(t, tombs, 1, "one tombstone for acme")

	report := filepath.Join(work, "quarantine.json")
	out := play("fleet_report.yml", map[string]any{"fleetsafe_quarantine_report_file": report})
	assert.Contains(t, out, "1 instances on 2 hosts, 0 partial; 1 in quarantine")
	data, err := os.ReadFile(report)
	require.NoError(t, err)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal(data, &rows))
	require.Len(t, rows, 1, "%s", data)
	assert.Equal(t, "web-a", rows[0]["host"])
	assert.Equal(t, "acme", rows[0]["name"])
	assert.Equal(t, "release tarball test", rows[0]["reason"])
	assert.Equal(t, tombs[0], rows[0]["tombstone"])

	play("restore_instance.yml", map[string]any{"instance_name": "acme"})
	assert.Equal(t, acme, hosts["web-a"].Snapshot(t, "acme"), "acme restored byte for byte")
	assert.Equal(t, globex, hosts["web-b"].Snapshot(t, "globex"), "the other host untouched")

	// The other playbooks a job runs from the install, each to its end:
	// purge (retention not reached: nothing goes), the nightly verify
	// with its metrics, and the recovery plan (nothing damaged). Only
	// configure_awx.yml is left out: it needs a real AWX's API.
	out = play("purge_instances.yml", nil)
	assert.Contains(t, out, "failed=0", "purge from the install")
	assert.Equal(t, acme, hosts["web-a"].Snapshot(t, "acme"), "purge left the restored acme alone")
	metrics := filepath.Join(work, "fleetsafe.prom")
	out = play("verify_backups.yml", map[string]any{"fail_on": "never", "fleetsafe_metrics_file": metrics})
	assert.Contains(t, out, "failed=0", "verify_backups from the install")
	prom, err := os.ReadFile(metrics)
	require.NoError(t, err, "verify_backups.yml wrote the metrics file")
	assert.Contains(t, string(prom), "fleetsafe_backup_status", "the metrics name the backups' status")
	out = play("recover_fleet.yml", nil)
	assert.Contains(t, out, "failed=0", "the recovery plan from the install")
	assert.Equal(t, globex, hosts["web-b"].Snapshot(t, "globex"), "the plan changed nothing")

	// What ran was the install's binary: each host's cache holds it, under
	// its sha256, and nothing else.
	for _, h := range []string{"web-a", "web-b"} {
		cached := filepath.Join(work, "cache", h, sum, "fleetsafe")
		assert.Equal(t, sum, fileSHA256(t, cached), "%s runs the installed binary", h)
		entries, err := os.ReadDir(filepath.Join(work, "cache", h))
		require.NoError(t, err)
		assert.Len(t, entries, 1, "%s's cache holds one version", h)
	}
}

// withoutUnits drops the systemd_unit component from a generated fleet's
// layout (the release binaries ignore the sandbox's FLEETSAFE_SYSTEMD_DIR
// and would look at the machine's own systemd).
func withoutUnits(t *testing.T, f *fleettest.Fleet) {
	t.Helper()
	data, err := os.ReadFile(f.LayoutFile)
	require.NoError(t, err)
	unit := fmt.Sprintf("  - name: service\n    type: systemd_unit\n    unit: %s@{name}.service\n    backup: false\n", f.App)
	require.Contains(t, string(data), unit, "the generated layout's unit component")
	require.NoError(t, os.WriteFile(f.LayoutFile, []byte(strings.Replace(string(data), unit, "", 1)), 0o644))
	l, err := instance.LoadLayoutFile(f.LayoutFile)
	require.NoError(t, err)
	f.Layout = l
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}
