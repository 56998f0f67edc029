// Package playbooks_test drives the project's playbooks through a real
// ansible-playbook against several inventory hosts (all this machine).
package playbooks_test

import (
	"context"
	"os"
	"path/filepath"
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
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			run := f.run(t, "playbooks/delete_instance.yml", c.vars, c.extra...)
			require.Error(t, run.Err, run.Output)
			assert.Contains(t, run.Output, c.want)
		})
	}
	assert.Equal(t, before, f.snapshot(t), "no refusal changed anything")
}

func TestDeleteInstance_OneOfTheFleetThenRestore(t *testing.T) {
	f := newFleet(t)
	before := f.snapshot(t)
	acme := f.hosts["web-a"].Snapshot(t, "acme")
	fetch := t.TempDir()
	run := f.run(t, "playbooks/delete_instance.yml", map[string]any{"instance_name": "acme", "reason": "left",
		"fleetsafe_fetch_dir": fetch, "awx_user_name": "alice", "awx_job_id": 1234})
	require.NoError(t, run.Err, run.Output)

	_, err := f.hosts["web-a"].Layout.Resolve(context.Background(), "acme", f.hosts["web-a"].Options())
	var nf *instance.NotFoundError
	require.ErrorAs(t, err, &nf)
	after := f.snapshot(t)
	assert.Equal(t, before["web-b"], after["web-b"], "the other host is untouched")
	assert.Len(t, after["web-a"], 1)
	fetched, _ := filepath.Glob(filepath.Join(fetch, "web-a", "acme", "*.tar.zst*"))
	assert.Len(t, fetched, 2, "archive and sidecar copied to the controller")
	tomb, _ := filepath.Glob(filepath.Join(f.archives, "web-a", "acme", "*.tombstone.json"))
	require.Len(t, tomb, 1)
	data, err := os.ReadFile(tomb[0])
	require.NoError(t, err)
	assert.Contains(t, string(data), `"requested_by": "alice"`)
	assert.Contains(t, string(data), `"job_id": "1234"`)

	run = f.run(t, "playbooks/restore_instance.yml", map[string]any{"instance_name": "acme"})
	require.NoError(t, run.Err, run.Output)
	assert.Equal(t, acme, f.hosts["web-a"].Snapshot(t, "acme"))
	assert.Equal(t, before, f.snapshot(t))
}
