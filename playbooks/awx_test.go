package playbooks_test

// delete_instance.yml driven the way AWX drives it: through ansible-runner
// (a private data directory with the project, the inventory and the extra
// vars AWX injects), with a limit, with the limit dropped (ansible/awx#12991),
// from a schedule, and as the "Delete instance" workflow: plan job in check
// mode, its set_stats artifacts handed to the delete job, as AWX hands a
// node's artifacts to the next node.

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// awxLaunch is the extra vars AWX injects for a job (awx_meta_vars in
// awx/main/models/unified_jobs.py and jobs.py), under both prefixes
// (JOB_VARIABLE_PREFIXES: awx, tower).
func awxLaunch(jobID int, launchType string, user map[string]any, more map[string]any) map[string]any {
	vars := map[string]any{"job_id": jobID, "job_launch_type": launchType, "job_template_id": 7,
		"job_template_name": "fleetsafe - delete one instance", "inventory_id": 3, "inventory_name": "tracim-fleet",
		"project_revision": "0123abcd", "project_scm_branch": "main", "execution_node": "awx-task-1"}
	for k, v := range user {
		vars[k] = v
	}
	for k, v := range more {
		vars[k] = v
	}
	out := map[string]any{}
	for k, v := range vars {
		out["awx_"+k] = v
		out["tower_"+k] = v
	}
	return out
}

var alice = map[string]any{"user_id": 2, "user_name": "alice", "user_email": "alice@example.com",
	"user_first_name": "Alice", "user_last_name": "Admin"}

// runnerJob is one ansible-runner run and what it left.
type runnerJob struct {
	Output    string
	Err       error
	Artifacts map[string]any // the set_stats data AWX keeps as the job's artifacts
}

// runAWX runs a playbook through ansible-runner as AWX does: the project
// under project/, the inventory under inventory/, the survey answers and
// AWX's variables in env/extravars, the limit and check mode on the
// command line.
func (f *fleet) runAWX(t *testing.T, inv, playbook string, extravars map[string]any, limit string, check bool) runnerJob {
	t.Helper()
	runner := filepath.Join(fleettest.RepoRoot(), ".venv", "bin", "ansible-runner")
	if _, err := os.Stat(runner); err != nil {
		if os.Getenv("FLEETSAFE_REQUIRE_ANSIBLE") == "1" {
			t.Fatal("ansible-runner is required (FLEETSAFE_REQUIRE_ANSIBLE=1); run `make venv`")
		}
		t.Skip("ansible-runner not found; run `make venv`")
	}
	pdd := t.TempDir()
	require.NoError(t, os.Symlink(fleettest.RepoRoot(), filepath.Join(pdd, "project")))
	require.NoError(t, os.MkdirAll(filepath.Join(pdd, "inventory"), 0o700))
	require.NoError(t, os.MkdirAll(filepath.Join(pdd, "env"), 0o700))
	invData, err := os.ReadFile(inv)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(pdd, "inventory", "hosts.yml"), invData, 0o600))
	ev, err := json.Marshal(extravars)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(pdd, "env", "extravars"), ev, 0o600))
	env, err := json.Marshal(map[string]string{
		"ANSIBLE_LIBRARY":          f.lib,
		"ANSIBLE_COLLECTIONS_PATH": filepath.Join(f.lib, "collections"),
		"ANSIBLE_CONFIG":           filepath.Join(fleettest.RepoRoot(), "ansible.cfg"),
		"ANSIBLE_LOCAL_TEMP":       t.TempDir(),
		"ANSIBLE_NOCOLOR":          "1",
	})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(pdd, "env", "envvars"), env, 0o600))
	args := []string{"run", pdd, "-p", playbook, "--ident", "job"}
	if limit != "" {
		args = append(args, "--limit", limit)
	}
	if check {
		// AWX gives the job's command line options to ansible-runner.
		require.NoError(t, os.WriteFile(filepath.Join(pdd, "env", "cmdline"), []byte("--check"), 0o600))
	}
	cmd := exec.Command(runner, args...)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(fleettest.RepoRoot(), ".venv", "bin")+":"+os.Getenv("PATH"))
	out, runErr := cmd.CombinedOutput()
	job := runnerJob{Output: string(out), Err: runErr}
	rc, err := os.ReadFile(filepath.Join(pdd, "artifacts", "job", "rc"))
	require.NoError(t, err, "ansible-runner left no rc: %s", out)
	if strings.TrimSpace(string(rc)) != "0" && job.Err == nil {
		job.Err = errors.New("ansible-playbook exited " + strings.TrimSpace(string(rc)))
	}
	// AWX keeps the set_stats data of the playbook_on_stats event
	// (artifact_data) as the job's artifacts.
	events, _ := filepath.Glob(filepath.Join(pdd, "artifacts", "job", "job_events", "*.json"))
	for _, e := range events {
		data, err := os.ReadFile(e)
		require.NoError(t, err)
		var ev struct {
			Event     string `json:"event"`
			EventData struct {
				ArtifactData map[string]any `json:"artifact_data"`
			} `json:"event_data"`
		}
		require.NoError(t, json.Unmarshal(data, &ev))
		if ev.Event == "playbook_on_stats" {
			job.Artifacts = ev.EventData.ArtifactData
		}
	}
	return job
}

func merge(ms ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// tombstone reads the one tombstone of name on host.
func (f *fleet) tombstone(t *testing.T, host, name string) map[string]any {
	t.Helper()
	tomb, _ := filepath.Glob(filepath.Join(f.archives, host, name, "*.tombstone.json"))
	require.Len(t, tomb, 1)
	data, err := os.ReadFile(tomb[0])
	require.NoError(t, err)
	var ts map[string]any
	require.NoError(t, json.Unmarshal(data, &ts))
	return ts
}

// A job launched by a user with a limit: the tombstone records the user,
// the job, its template, inventory and launch type, and the inventory host
// beside the OS hostname.
func TestAWX_LaunchedByAUserWithALimit(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	before := f.snapshot(t)
	job := f.runAWX(t, f.inv, "playbooks/delete_instance.yml", merge(awxLaunch(4711, "manual", alice, nil),
		map[string]any{"instance_name": "acme", "reason": "contract ended", "expected_count": 1}), "web-a", false)
	require.NoError(t, job.Err, job.Output)
	assert.Equal(t, before["web-b"], f.snapshot(t)["web-b"], "the other host is untouched")
	ts := f.tombstone(t, "web-a", "acme")
	hostname, err := os.Hostname()
	require.NoError(t, err)
	assert.Equal(t, hostname, ts["host"], "host stays the OS hostname")
	assert.Equal(t, "alice", ts["requested_by"])
	assert.Equal(t, "4711", ts["job_id"])
	assert.Equal(t, map[string]any{"awx_user_name": "alice", "awx_user_email": "alice@example.com", "awx_job_id": "4711",
		"awx_job_template_name": "fleetsafe - delete one instance", "awx_inventory_name": "tracim-fleet",
		"awx_job_launch_type": "manual", "inventory_host": "web-a"}, ts["launch"])
}

// The limit dropped (an empty limit means every host): the plan still
// counts every host, so a name on two hosts is refused, and a name on one
// is deleted there alone. A limit that excludes the match is refused.
func TestAWX_DroppedLimit(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	before := f.snapshot(t)
	vars := awxLaunch(12, "workflow", alice, map[string]any{"workflow_job_id": 11, "workflow_job_name": "Delete instance"})
	job := f.runAWX(t, f.inv, "playbooks/delete_instance.yml", merge(vars, map[string]any{"instance_name": "shared", "reason": "r"}), "", false)
	require.Error(t, job.Err, job.Output)
	assert.Contains(t, job.Output, "shared matches 2 instance(s) (web-a, web-b) across 2 hosts, expected 1")
	job = f.runAWX(t, f.inv, "playbooks/delete_instance.yml", merge(vars, map[string]any{"instance_name": "acme", "reason": "r"}), "web-b", false)
	require.Error(t, job.Err, job.Output)
	assert.Contains(t, job.Output, "acme lives on web-a, which this job's limit excludes")
	assert.Equal(t, before, f.snapshot(t), "no refusal changed anything")

	job = f.runAWX(t, f.inv, "playbooks/delete_instance.yml", merge(vars, map[string]any{"instance_name": "acme", "reason": "r"}), "", false)
	require.NoError(t, job.Err, job.Output)
	assert.Equal(t, before["web-b"], f.snapshot(t)["web-b"])
	assert.Len(t, f.snapshot(t)["web-a"], 1)
}

// A scheduled job has no user: requested_by names the schedule, and so
// does it for a workflow launched by a schedule (the node's job carries
// the schedule as its parent's). Never "unknown".
func TestAWX_ScheduledJobIsNeverUnknown(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	sched := awxLaunch(900, "scheduled", nil, map[string]any{"schedule_id": 5, "schedule_name": "nightly cleanup"})
	job := f.runAWX(t, f.inv, "playbooks/delete_instance.yml", merge(sched, map[string]any{"instance_name": "acme", "reason": "r"}), "", false)
	require.NoError(t, job.Err, job.Output)
	ts := f.tombstone(t, "web-a", "acme")
	assert.Equal(t, "schedule nightly cleanup", ts["requested_by"])
	assert.Equal(t, "scheduled", ts["launch"].(map[string]any)["awx_job_launch_type"])
	assert.Equal(t, "nightly cleanup", ts["launch"].(map[string]any)["awx_schedule_name"])

	wf := awxLaunch(902, "workflow", nil, map[string]any{"workflow_job_id": 901, "workflow_job_name": "Delete instance",
		"workflow_job_launch_type": "scheduled", "parent_job_schedule_id": 6, "parent_job_schedule_name": "weekly"})
	job = f.runAWX(t, f.inv, "playbooks/delete_instance.yml", merge(wf, map[string]any{"instance_name": "globex", "reason": "r"}), "", false)
	require.NoError(t, job.Err, job.Output)
	ts = f.tombstone(t, "web-b", "globex")
	assert.Equal(t, "schedule weekly", ts["requested_by"])
	assert.Equal(t, map[string]any{"awx_job_id": "902", "awx_job_template_name": "fleetsafe - delete one instance",
		"awx_workflow_job_id": "901", "awx_workflow_job_name": "Delete instance", "awx_schedule_name": "weekly",
		"awx_inventory_name": "tracim-fleet", "awx_job_launch_type": "workflow", "inventory_host": "web-b"}, ts["launch"])
}

// The "Delete instance" workflow without AWX: the plan job (check mode)
// changes nothing and publishes the plan, what it would archive and
// where, and the fleet fingerprint; the delete job, bound to an approved
// fingerprint, refuses without one and deletes with the plan's.
func TestAWX_DeleteWorkflow_PlanApproveDelete(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	before := f.snapshot(t)
	wf := awxLaunch(31, "workflow", alice, map[string]any{"workflow_job_id": 30, "workflow_job_name": "Delete instance"})
	ask := map[string]any{"instance_name": "acme", "reason": "contract ended"}
	plan := f.runAWX(t, f.inv, "playbooks/delete_instance.yml", merge(wf, ask), "", true)
	require.NoError(t, plan.Err, plan.Output)
	assert.Equal(t, before, f.snapshot(t), "the plan changed nothing")
	left, _ := filepath.Glob(filepath.Join(f.archives, "*", "*"))
	assert.Empty(t, left, "the plan wrote no archive, tombstone or lock")
	fp, _ := plan.Artifacts["fleetsafe_approved_fingerprint"].(string)
	require.Len(t, fp, 64, "artifacts: %v\n%s", plan.Artifacts, plan.Output)
	summary, _ := plan.Artifacts["fleetsafe_plan_summary"].(string)
	assert.Contains(t, summary, "acme on web-a: archive config, data, logs")
	assert.Contains(t, summary, "into "+filepath.Join(f.archives, "web-a")+"/acme/, then quarantine")
	assert.Contains(t, plan.Artifacts["fleetsafe_plan"], "web-a")

	bound := merge(wf, ask, map[string]any{"fleetsafe_require_approved_fingerprint": true})
	job := f.runAWX(t, f.inv, "playbooks/delete_instance.yml", bound, "", false)
	require.Error(t, job.Err, job.Output)
	assert.Contains(t, job.Output, "this job deletes only an approved plan")
	assert.Equal(t, before, f.snapshot(t))

	// AWX hands the plan job's artifacts to the next nodes as extra vars.
	job = f.runAWX(t, f.inv, "playbooks/delete_instance.yml", merge(bound, plan.Artifacts), "", false)
	require.NoError(t, job.Err, job.Output)
	assert.Equal(t, before["web-b"], f.snapshot(t)["web-b"])
	ts := f.tombstone(t, "web-a", "acme")
	assert.Equal(t, "alice", ts["requested_by"])
	assert.Equal(t, "Delete instance", ts["launch"].(map[string]any)["awx_workflow_job_name"])
	assert.Equal(t, "30", ts["launch"].(map[string]any)["awx_workflow_job_id"])
}

// A fleet that changed between the plan and the delete is refused, and
// nothing is deleted: a host added to the inventory, or the instance
// itself changed (a component gone).
func TestAWX_DeleteWorkflow_ChangedFleetIsRefused(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	wf := awxLaunch(41, "workflow", alice, map[string]any{"workflow_job_id": 40, "workflow_job_name": "Delete instance"})
	ask := map[string]any{"instance_name": "acme", "reason": "contract ended", "fleetsafe_require_approved_fingerprint": true}
	plan := f.runAWX(t, f.inv, "playbooks/delete_instance.yml", merge(wf, ask), "", true)
	require.NoError(t, plan.Err, plan.Output)
	require.NotEmpty(t, plan.Artifacts["fleetsafe_approved_fingerprint"], plan.Output)

	// A host joined the inventory (without acme: the count is still one).
	c := fleettest.New(t, false, "initech")
	grown := fleettest.Inventory(t, f.archives, map[string]*fleettest.Fleet{"web-a": f.hosts["web-a"], "web-b": f.hosts["web-b"], "web-c": c})
	before := f.snapshot(t)
	job := f.runAWX(t, grown, "playbooks/delete_instance.yml", merge(wf, ask, plan.Artifacts), "", false)
	require.Error(t, job.Err, job.Output)
	assert.Contains(t, job.Output, "the fleet changed since the plan was approved")
	assert.Contains(t, job.Output, "3 host(s) looked up")

	// The instance changed: its optional logs directory went away.
	require.NoError(t, os.RemoveAll(f.hosts["web-a"].Path("logs", "acme")))
	before = f.snapshot(t)
	job = f.runAWX(t, f.inv, "playbooks/delete_instance.yml", merge(wf, ask, plan.Artifacts), "", false)
	require.Error(t, job.Err, job.Output)
	assert.Contains(t, job.Output, "the fleet changed since the plan was approved")
	assert.Equal(t, before, f.snapshot(t), "nothing was deleted")
	left, _ := filepath.Glob(filepath.Join(f.archives, "*", "*"))
	assert.Empty(t, left, "no archive, tombstone or lock was written")
}
