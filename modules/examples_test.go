package modules_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// The paths and names the EXAMPLES use, and what stands for them in the
// sandbox. Nothing else of an example is changed: a new placeholder in an
// EXAMPLE fails the test until it is added here.
type placeholder struct{ text, sandboxKey string }

var examplePlaceholders = []placeholder{
	{"/etc/fleetsafe/tracim.yml", "fleetsafe_layout_file"},
	{"/var/backups/fleetsafe", "fleetsafe_archive_dir"},
	{"/var/lib/node_exporter/textfile/fleetsafe_tracim.prom", "fleetsafe_metrics_file"},
}

// examplesOrder runs the modules' EXAMPLES as one story: look the instance
// up (the plan), soft-delete it with the plan's fingerprint, restore it,
// see what a purge would do and purge, verify the backups.
var examplesOrder = []string{"instance_info", "instance_soft_delete", "instance_restore", "instance_purge", "backup_verify"}

// TestExamples_RunAgainstASandbox extracts every module's EXAMPLES from
// its sidecar doc and runs them, as a user pasting them would, in one
// playbook against a sandbox fleet made by cmd/fleetsafe-sandbox: every
// task must succeed, by its FQCN, with only the sandbox's paths put in.
func TestExamples_RunAgainstASandbox(t *testing.T) {
	fleettest.AnsiblePlaybook(t)
	lib := fleettest.BuildModules(t)
	root := t.TempDir()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	marker := "fsex" + hex.EncodeToString(suffix)
	sandbox := func(args ...string) {
		cmd := exec.Command("go", append([]string{"run", "./cmd/fleetsafe-sandbox", "-root", root, "-marker", marker}, args...)...)
		cmd.Dir = fleettest.RepoRoot()
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "fleetsafe-sandbox: %s", out)
	}
	sandbox("-hosts", "1", "-instances", "3")
	t.Cleanup(func() { sandbox("-clean") })

	// The instance_info example logs in over TCP as a role of its own. The
	// password is the same for every run, so that two runs at once (two
	// checkouts on one machine) agree on it; the role is left in place.
	const password = "fleetsafe-examples"
	psql(t, `DO $$ BEGIN CREATE ROLE fleetsafe LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
	psql(t, `ALTER ROLE fleetsafe LOGIN PASSWORD '`+password+`'`)

	var inv struct {
		All struct {
			Children map[string]struct {
				Hosts map[string]map[string]any `yaml:"hosts"`
			} `yaml:"children"`
		} `yaml:"all"`
	}
	data, err := os.ReadFile(filepath.Join(root, "inventory.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &inv))
	host := inv.All.Children["tracim"].Hosts["tracim-01"]
	require.NotNil(t, host, "sandbox inventory: %s", data)

	var tasks strings.Builder
	for _, m := range examplesOrder {
		raw, err := os.ReadFile(filepath.Join(m, m+".yml"))
		require.NoError(t, err)
		var doc struct {
			Examples string `yaml:"EXAMPLES"`
		}
		require.NoError(t, yaml.Unmarshal(raw, &doc))
		ex := doc.Examples
		for _, p := range examplePlaceholders {
			ex = strings.ReplaceAll(ex, p.text, host[p.sandboxKey].(string))
		}
		for _, path := range regexp.MustCompile(`(?m)(?:^|\s)(/(?:etc|var|srv|opt|home)/\S+)`).FindAllStringSubmatch(ex, -1) {
			t.Errorf("%s EXAMPLES: %s is not a path the sandbox stands in for; add it to examplePlaceholders", m, path[1])
		}
		for _, line := range strings.Split(ex, "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			tasks.WriteString("    " + line + "\n")
		}
	}
	play := "- name: Every module's EXAMPLES, in order\n  hosts: tracim-01\n  gather_facts: false\n" +
		"  environment:\n    FLEETSAFE_SYSTEMD_DIR: " + host["fleetsafe_systemd_dir"].(string) + "\n" +
		"  vars:\n    vault_pg_password: " + password + "\n  tasks:\n" + tasks.String()
	pb := filepath.Join(t.TempDir(), "examples.yml")
	require.NoError(t, os.WriteFile(pb, []byte(play), 0o644))
	run := fleettest.RunPlaybookArgs(t, lib, []string{"-i", filepath.Join(root, "inventory.yml"), pb}, map[string]any{})
	require.NoError(t, run.Err, "%s\n%s", play, run.Output)
	recap := regexp.MustCompile(`tracim-01\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0\s+skipped=0`).FindStringSubmatch(run.Output)
	require.NotNil(t, recap, "every example ran and none failed or was skipped:\n%s", run.Output)
	tasksRun := len(regexp.MustCompile(`(?m)^    - name:`).FindAllString(tasks.String(), -1))
	require.Greater(t, tasksRun, 8, "the five modules' examples")
	require.Equal(t, strconv.Itoa(tasksRun), recap[1], "one ok per example task:\n%s", run.Output)
	require.NotEqual(t, "0", recap[2], "the examples changed the sandbox (delete, restore):\n%s", run.Output)
}

func psql(t *testing.T, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "psql", "-h", "/var/run/postgresql", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql).CombinedOutput()
	require.NoError(t, err, "psql: %s", out)
}
