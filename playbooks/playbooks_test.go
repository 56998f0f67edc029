// Package playbooks_test drives the project's playbooks through a real
// ansible-playbook against several inventory hosts (all this machine).
package playbooks_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

type fleet struct {
	lib, inv, archives string
	hosts              map[string]*fleettest.Fleet
}

func newFleet(t *testing.T) *fleet {
	a := fleettest.New(t, true, "acme", "shared")
	b := fleettest.New(t, true, "globex", "shared")
	archives := t.TempDir()
	hosts := map[string]*fleettest.Fleet{"web-a": a, "web-b": b}
	return &fleet{lib: fleettest.BuildModules(t), inv: fleettest.Inventory(t, archives, hosts), archives: archives, hosts: hosts}
}

func (f *fleet) run(t *testing.T, playbook string, vars map[string]any, extra ...string) fleettest.Playbook {
	args := append([]string{"-i", f.inv}, extra...)
	args = append(args, playbook)
	return fleettest.RunPlaybookArgs(t, f.lib, args, vars)
}

func (f *fleet) snapshot(t *testing.T) map[string][]string {
	out := map[string][]string{}
	for h, fl := range f.hosts {
		insts, err := fl.Layout.Discover(context.Background(), fl.Options())
		require.NoError(t, err)
		for _, i := range insts {
			out[h] = append(out[h], i.Name+":"+i.Fingerprint())
		}
	}
	return out
}

func TestDeleteInstance_Refusals(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	before := f.snapshot(t)
	cases := map[string]struct {
		vars  map[string]any
		extra []string
		want  string
	}{
		"empty name":          {map[string]any{"instance_name": "", "reason": "r"}, nil, "needs instance_name"},
		"glob":                {map[string]any{"instance_name": "acm*", "reason": "r"}, nil, "glob characters"},
		"list":                {map[string]any{"instance_name": []string{"acme"}, "reason": "r"}, nil, "needs instance_name"},
		"no reason":           {map[string]any{"instance_name": "acme"}, nil, "needs instance_name"},
		"absent":              {map[string]any{"instance_name": "nobody", "reason": "r"}, nil, "matches 0 instance(s)"},
		"on two hosts":        {map[string]any{"instance_name": "shared", "reason": "r"}, nil, "matches 2 instance(s)"},
		"wrong fingerprint":   {map[string]any{"instance_name": "acme", "reason": "r", "fingerprint": "abc"}, nil, "does not match"},
		"limit excludes it":   {map[string]any{"instance_name": "acme", "reason": "r"}, []string{"--limit", "web-b"}, "which this job's limit excludes"},
		"expected 2, finds 1": {map[string]any{"instance_name": "acme", "reason": "r", "expected_count": 2}, nil, "expected 2"},
		"overriding the count": {map[string]any{"instance_name": "shared", "reason": "r", "fleetsafe_matches": []string{"web-a", "web-b"},
			"fleetsafe_answers": []any{}}, nil, "fleetsafe_answers, fleetsafe_matches are this playbook's own and must not be given"},
	}
	// Every refusal comes from the plan play, which only looks up (the
	// instance_info module): the cases run two at a time, and the group
	// returns once all have run.
	t.Run("cases", func(t *testing.T) {
		for name, c := range cases {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				run := f.run(t, "playbooks/delete_instance.yml", c.vars, c.extra...)
				require.Error(t, run.Err, run.Output)
				assert.Contains(t, run.Output, c.want)
			})
		}
	})
	assert.Equal(t, before, f.snapshot(t), "no refusal changed anything")
}

// Not parallel: it sets the process's umask, which every other test's
// files would get. The other tests of this package run two at a time
// (t.Parallel, go test's -parallel): each has fleets, databases, archive
// and cache directories of its own, and ansible-playbook runs leave a core
// idle part of the time.
func TestDeleteInstance_OneOfTheFleetThenRestore(t *testing.T) {
	f := newFleet(t)
	before := f.snapshot(t)
	acme := f.hosts["web-a"].Snapshot(t, "acme")
	fetch := t.TempDir()
	// The controller's usual umask, and a host directory left world-readable
	// by an earlier run: the copies must be private all the same.
	defer syscall.Umask(syscall.Umask(0o022))
	require.NoError(t, os.Mkdir(filepath.Join(fetch, "web-a"), 0o755))
	run := f.run(t, "playbooks/delete_instance.yml", map[string]any{"instance_name": "acme", "reason": "left",
		"fleetsafe_fetch_archive": true, "fleetsafe_fetch_dir": fetch, "awx_user_name": "alice", "awx_job_id": 1234})
	require.NoError(t, run.Err, run.Output)

	_, err := f.hosts["web-a"].Layout.Resolve(context.Background(), "acme", f.hosts["web-a"].Options())
	var nf *instance.NotFoundError
	require.ErrorAs(t, err, &nf)
	after := f.snapshot(t)
	assert.Equal(t, before["web-b"], after["web-b"], "the other host is untouched")
	assert.Len(t, after["web-a"], 1)
	fetched, _ := filepath.Glob(filepath.Join(fetch, "web-a", "acme", "*.tar.zst*"))
	assert.Len(t, fetched, 2, "archive and sidecar copied to the controller")
	assertPrivateCopies(t, fetch, "web-a", "acme", fetched, f.archives)
	tomb, _ := filepath.Glob(filepath.Join(f.archives, "web-a", "acme", "*.tombstone.json"))
	require.Len(t, tomb, 1)
	data, err := os.ReadFile(tomb[0])
	require.NoError(t, err)
	assert.Contains(t, string(data), `"requested_by": "alice"`)
	assert.Contains(t, string(data), `"job_id": "1234"`)

	// Another host cannot read web-a's local archive directory: a
	// restore_on web-b is refused, with nothing changed.
	mid := f.snapshot(t)
	run = f.run(t, "playbooks/restore_instance.yml", map[string]any{"instance_name": "acme", "restore_on": "web-b", "relocate": true})
	require.Error(t, run.Err, run.Output)
	assert.Contains(t, run.Output, "archives are on web-a's own disk")
	assert.Equal(t, mid, f.snapshot(t))

	run = f.run(t, "playbooks/restore_instance.yml", map[string]any{"instance_name": "acme"})
	require.NoError(t, run.Err, run.Output)
	assert.Equal(t, acme, f.hosts["web-a"].Snapshot(t, "acme"))
	assert.Equal(t, before, f.snapshot(t))
}

// assertPrivateCopies checks that the archive copied to the controller
// (configuration secrets, the full database dump) is readable by its owner
// only: 0600 files in 0700 directories, and the same bytes as on the host.
func assertPrivateCopies(t *testing.T, fetch, host, name string, fetched []string, archives string) {
	t.Helper()
	for _, d := range []string{filepath.Join(fetch, host), filepath.Join(fetch, host, name)} {
		st, err := os.Stat(d)
		require.NoError(t, err)
		assert.Equal(t, fs.ModeDir|0o700, st.Mode(), "controller directory %s", d)
	}
	for _, p := range fetched {
		st, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, fs.FileMode(0o600), st.Mode(), "controller copy %s", p)
		orig := filepath.Join(archives, host, name, filepath.Base(p))
		assert.Equal(t, digest(t, orig), digest(t, p), "controller copy %s is the host's archive", p)
	}
}

func digest(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	return fmt.Sprintf("%x", sha256.Sum256(data))
}

// The controller copy must outlive the job: a relative fleetsafe_fetch_dir
// (read from the playbook's directory), one inside the project directory
// (under AWX a copy made for the job and deleted with it) or none at all
// is refused before anything changes, and the refusal says why.
func TestDeleteInstance_FetchDirInsideTheProjectIsRefused(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	before := f.snapshot(t)
	// Refused before anything changes (see the assertions): the cases run
	// two at a time, and the group returns once all have run.
	t.Run("cases", func(t *testing.T) {
		for name, dir := range map[string]any{
			"relative":       "fetched",
			"in the project": filepath.Join(fleettest.RepoRoot(), "fleetsafe-archives"),
			"the project":    fleettest.RepoRoot() + "/playbooks/..",
			"not given":      "",
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				run := f.run(t, "playbooks/delete_instance.yml", map[string]any{"instance_name": "acme", "reason": "left",
					"fleetsafe_fetch_archive": true, "fleetsafe_fetch_dir": dir})
				require.Error(t, run.Err, run.Output)
				assert.Contains(t, run.Output, "must be an absolute directory on the controller outside the project directory")
				assert.Contains(t, run.Output, "deleted with it, so an archive copied there vanishes when the job ends")
				assert.NotContains(t, run.Output, "Archive, verify, tombstone and quarantine ***", "nothing was deleted")
			})
		}
	})
	assert.Equal(t, before, f.snapshot(t), "nothing was deleted")
	_, err := os.Stat(filepath.Join(fleettest.RepoRoot(), "fleetsafe-archives"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// An inventory host that cannot be reached makes the count of matches
// incomplete: the play stops before anything changes, says the count is
// incomplete and names the host.
func TestDeleteInstance_UnreachableHostStopsTheCount(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	before := f.snapshot(t)
	path := f.withUnreachableHost(t)

	run := fleettest.RunPlaybookArgs(t, f.lib, []string{"-i", path, "playbooks/delete_instance.yml"},
		map[string]any{"instance_name": "acme", "reason": "left", "fleetsafe_fetch_dir": t.TempDir()})
	require.Error(t, run.Err, run.Output)
	assert.Contains(t, run.Output, "the fleet count is incomplete", run.Output)
	assert.Contains(t, run.Output, "1 of 3 inventory host(s) could not be reached (web-ghost)")
	assert.NotContains(t, run.Output, "Archive, verify, tombstone and quarantine", "the deletion play never started")
	assert.Equal(t, before, f.snapshot(t), "nothing was deleted")
	left, _ := filepath.Glob(filepath.Join(f.archives, "*", "*", "*"))
	assert.Empty(t, left, "no archive, tombstone or lock was written")
}

// A host where the lookup fails (here its layout file is missing) leaves
// the count incomplete just the same: the play stops, names the host and
// its error, and nothing is deleted.
func TestDeleteInstance_FailedLookupStopsTheCount(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	before := f.snapshot(t)
	inv, err := os.ReadFile(f.inv)
	require.NoError(t, err)
	broken := strings.Replace(string(inv), f.hosts["web-b"].LayoutFile, "/nonexistent/layout.yml", 1)
	require.NotEqual(t, string(inv), broken)
	path := filepath.Join(t.TempDir(), "inventory.yml")
	require.NoError(t, os.WriteFile(path, []byte(broken), 0o644))

	run := fleettest.RunPlaybookArgs(t, f.lib, []string{"-i", path, "playbooks/delete_instance.yml"},
		map[string]any{"instance_name": "acme", "reason": "left", "fleetsafe_fetch_dir": t.TempDir()})
	require.Error(t, run.Err, run.Output)
	assert.Contains(t, run.Output, "the fleet count is incomplete: the lookup of acme failed on 1 of 2 inventory host(s): web-b: ")
	assert.Contains(t, run.Output, "/nonexistent/layout.yml")
	assert.Equal(t, before, f.snapshot(t), "nothing was deleted")
	left, _ := filepath.Glob(filepath.Join(f.archives, "*", "*", "*"))
	assert.Empty(t, left, "no archive, tombstone or lock was written")
}

// withUnreachableHost writes the fleet's inventory plus web-ghost, an ssh
// host on a local port where nothing listens.
func (f *fleet) withUnreachableHost(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close()) // nothing listens there any more
	inv, err := os.ReadFile(f.inv)
	require.NoError(t, err)
	ghost := fmt.Sprintf(`    web-ghost:
      ansible_connection: ssh
      ansible_host: 127.0.0.1
      ansible_port: %d
      ansible_user: nobody
      ansible_timeout: 3
      ansible_ssh_common_args: -o ConnectTimeout=3 -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
      fleetsafe_layout_file: %s
      fleetsafe_archive_dir: %s
`, port, f.hosts["web-a"].LayoutFile, filepath.Join(f.archives, "web-ghost"))
	path := filepath.Join(t.TempDir(), "inventory.yml")
	require.NoError(t, os.WriteFile(path, append(inv, ghost...), 0o644))
	return path
}

// restore_instance.yml searches every inventory host for the archives:
// an unreachable one makes the search incomplete, and the play says so,
// names it, and restores nothing.
func TestRestoreInstance_UnreachableHostStopsTheSearch(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	before := f.snapshot(t)
	run := fleettest.RunPlaybookArgs(t, f.lib, []string{"-i", f.withUnreachableHost(t), "playbooks/restore_instance.yml"},
		map[string]any{"instance_name": "acme"})
	require.Error(t, run.Err, run.Output)
	assert.Contains(t, run.Output, "the search for acme's archives is incomplete: 1 of 3 inventory host(s) could not be searched (web-ghost: unreachable)", run.Output)
	assert.NotContains(t, run.Output, "Bring the instance back", "the restore play never started")
	assert.Equal(t, before, f.snapshot(t), "nothing was touched")
}

// The targets need no Python: delete_instance.yml and restore_instance.yml
// run only fleetsafe modules (binaries) on them. Every inventory host's
// Python is a path that does not exist, so any Python module sent to a
// target fails the job.
func TestPlaybooks_NoPythonOnTargets(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	before := f.snapshot(t)
	inv, err := os.ReadFile(f.inv)
	require.NoError(t, err)
	noPython := strings.ReplaceAll(string(inv), `"{{ ansible_playbook_python }}"`, "/nonexistent/python3")
	require.NotEqual(t, string(inv), noPython)
	path := filepath.Join(t.TempDir(), "inventory.yml")
	require.NoError(t, os.WriteFile(path, []byte(noPython), 0o644))

	run := fleettest.RunPlaybookArgs(t, f.lib, []string{"-i", path, "playbooks/delete_instance.yml"},
		map[string]any{"instance_name": "acme", "reason": "left"})
	require.NoError(t, run.Err, run.Output)
	assert.NotEqual(t, before, f.snapshot(t))
	run = fleettest.RunPlaybookArgs(t, f.lib, []string{"-i", path, "playbooks/restore_instance.yml"},
		map[string]any{"instance_name": "acme"})
	require.NoError(t, run.Err, run.Output)
	assert.Equal(t, before, f.snapshot(t))
}

// A host known to be decommissioned, named in fleetsafe_gone_hosts, is not
// looked up: the count goes on without it, and the tombstone records it.
// Restore skips it the same way.
func TestDeleteInstance_GoneHostsAreSkippedAndRecorded(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	before := f.snapshot(t)
	path := f.withUnreachableHost(t)
	run := fleettest.RunPlaybookArgs(t, f.lib, []string{"-i", path, "playbooks/delete_instance.yml"},
		map[string]any{"instance_name": "acme", "reason": "left", "fleetsafe_gone_hosts": []string{"web-ghost"}})
	require.NoError(t, run.Err, run.Output)
	tomb, _ := filepath.Glob(filepath.Join(f.archives, "web-a", "acme", "*.tombstone.json"))
	require.Len(t, tomb, 1)
	data, err := os.ReadFile(tomb[0])
	require.NoError(t, err)
	var ts struct {
		Launch struct {
			GoneHosts     []string `json:"gone_hosts"`
			InventoryHost string   `json:"inventory_host"`
		} `json:"launch"`
		RequestedBy string `json:"requested_by"`
	}
	require.NoError(t, json.Unmarshal(data, &ts))
	assert.Equal(t, []string{"web-ghost"}, ts.Launch.GoneHosts)
	assert.Equal(t, "web-a", ts.Launch.InventoryHost)
	assert.NotEqual(t, "unknown", ts.RequestedBy)

	run = fleettest.RunPlaybookArgs(t, f.lib, []string{"-i", path, "playbooks/restore_instance.yml"},
		map[string]any{"instance_name": "acme", "fleetsafe_gone_hosts": []string{"web-ghost"}})
	require.NoError(t, run.Err, run.Output)
	assert.Equal(t, before, f.snapshot(t))

	run = fleettest.RunPlaybookArgs(t, f.lib, []string{"-i", path, "playbooks/delete_instance.yml"},
		map[string]any{"instance_name": "acme", "reason": "left", "fleetsafe_gone_hosts": "web-ghost"})
	require.Error(t, run.Err, run.Output)
	assert.Contains(t, run.Output, "fleetsafe_gone_hosts, when given, must be a list of host names")
}

// With a limit of several hosts, the hosts outside it are shared out among
// the job's hosts and every one of them is looked up: a name on two hosts
// outside the limit, each looked up by a different job host, is counted
// twice and refused, and the lookup ran from both job hosts.
func TestDeleteInstance_HostsOutsideTheLimitAreCounted(t *testing.T) {
	t.Parallel()
	hosts := map[string]*fleettest.Fleet{
		"web-a": fleettest.New(t, false, "acme"), "web-b": fleettest.New(t, false, "globex"),
		"web-c": fleettest.New(t, false, "outer"), "web-d": fleettest.New(t, false, "outer"),
	}
	f := &fleet{lib: fleettest.BuildModules(t), archives: t.TempDir(), hosts: hosts}
	f.inv = fleettest.Inventory(t, f.archives, hosts)
	before := f.snapshot(t)
	run := f.run(t, "playbooks/delete_instance.yml", map[string]any{"instance_name": "outer", "reason": "r"}, "--limit", "web-a,web-b", "-v")
	require.Error(t, run.Err, run.Output)
	assert.Contains(t, run.Output, "outer matches 2 instance(s) (web-c, web-d) across 4 hosts, expected 1")
	// One outside host from each job host (the delegated item's line names both).
	assert.Regexp(t, `ok: \[web-a -> web-[cd]\(127\.0\.0\.1\)\]|ok: \[web-a -> web-[cd]\]`, run.Output)
	assert.Regexp(t, `ok: \[web-b -> web-[cd]\(127\.0\.0\.1\)\]|ok: \[web-b -> web-[cd]\]`, run.Output)
	assert.Equal(t, before, f.snapshot(t), "nothing was deleted")
}
