package backupverify

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/backup"
)

// Module verifies the backups of every instance of a layout.
var Module = ansible.Module{
	Name: "backup_verify",
	Spec: ansible.Spec{Params: map[string]ansible.Param{
		"names":        {Type: ansible.TypeList, Elements: ansible.TypeStr},
		"restore_test": {Type: ansible.TypeInt, Default: int64(0)},
		"metrics_file": {Type: ansible.TypePath},
		"state_file":   {Type: ansible.TypePath},
		"fail_on":      {Type: ansible.TypeStr, Default: "failed", Choices: []string{"failed", "warning", "never"}},
		"archive_dir":  {Type: ansible.TypePath},
	}}.Merge(modutil.LayoutSpec).Merge(modutil.PGSpec),
	Run: run,
}

// DefaultStateDir holds the restore rotation of each app when state_file
// is not given.
const DefaultStateDir = "/var/lib/fleetsafe"

func run(ctx context.Context, req *ansible.Request) (*ansible.Result, error) {
	start := time.Now()
	p := req.Params
	app := ""
	// A run that fails before checking rewrites the metrics file with
	// fleetsafe_backup_verify_success 0 and nothing else, so that the
	// values of an earlier run cannot keep the alerts green.
	failed := func(err error) (*ansible.Result, error) {
		mf := p.String("metrics_file")
		if mf == "" || req.CheckMode {
			return nil, err
		}
		if werr := backup.WriteFailedRunMetrics(mf, app, start); werr != nil {
			return nil, fmt.Errorf("%w; and the metrics file could not be rewritten: %v", err, werr)
		}
		return nil, err
	}
	layout, err := modutil.Layout(req.Params)
	if err != nil {
		return failed(err)
	}
	app = layout.App
	if p.Int("restore_test") < 0 {
		return failed(fmt.Errorf("restore_test must be 0 or more, got %d", p.Int("restore_test")))
	}
	state := p.String("state_file")
	if state == "" {
		state = filepath.Join(DefaultStateDir, "backup_verify-"+layout.App+".json")
	}
	restore := int(p.Int("restore_test"))
	if req.CheckMode {
		// Test restores create and drop databases, and the rotation is
		// remembered: neither happens in check mode.
		restore, state = 0, ""
	}
	rep, err := backup.Verify(ctx, layout, backup.Options{
		Names: p.Strings("names"), RestoreTest: restore, StateFile: state, Discovery: modutil.Options(p),
		ArchiveDir: p.String("archive_dir"), Now: start,
	})
	if err != nil {
		return failed(err)
	}
	res := &ansible.Result{}
	res.Set("instances", rep.Instances).Set("summary", rep.Summary).Set("orphans", rep.Orphans).Set("app", rep.App)
	for _, w := range rep.Warnings {
		res.Warn("%s", w)
	}
	for _, o := range rep.Orphans {
		res.Warn("backups of %s (component %s) have no instance on this host: %s", o.Name, o.Component, strings.Join(o.Files, ", "))
	}
	if mf := p.String("metrics_file"); mf != "" && !req.CheckMode {
		if err := rep.WriteMetrics(mf); err != nil {
			return res, err
		}
		// Rewritten on every run; a report, not a change to any instance,
		// so the task stays changed: false and re-runs stay idempotent.
		res.Set("metrics_file", mf)
	}
	failOn := p.String("fail_on")
	var bad []string
	for _, inst := range rep.Instances {
		if failOn == "never" || (inst.Status != backup.StatusFailed && !(failOn == "warning" && inst.Status == backup.StatusWarning)) {
			continue
		}
		var why []string
		for _, c := range inst.Checks {
			if c.Status == backup.StatusFailed || (failOn == "warning" && c.Status == backup.StatusWarning) {
				why = append(why, fmt.Sprintf("%s/%s %s: %s", c.Component, c.Check, c.Status, c.Detail))
			}
		}
		bad = append(bad, fmt.Sprintf("%s (%s)", inst.Name, strings.Join(why, "; ")))
	}
	s := rep.Summary
	summary := fmt.Sprintf("%d instances: %d ok, %d warning, %d failed", s.Instances, s.OK, s.Warning, s.Failed)
	if len(bad) > 0 {
		return res, fmt.Errorf("backups of %d instance(s) at or above %s: %s; %s", len(bad), failOn, strings.Join(bad, " | "), summary)
	}
	res.Msg = summary
	return res, nil
}
