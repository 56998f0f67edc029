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
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// Module verifies the backups of every instance of a layout.
var Module = ansible.Module{
	Name: "backup_verify",
	Spec: ansible.Spec{Params: map[string]ansible.Param{
		"names":        {Type: ansible.TypeList, Elements: ansible.TypeStr},
		"restore_test": {Type: ansible.TypeInt, Default: int64(0)},
		"drill":        {Type: ansible.TypeBool, Default: false},
		"metrics_file": {Type: ansible.TypePath},
		"state_file":   {Type: ansible.TypePath},
		"fail_on":      {Type: ansible.TypeStr, Default: "failed", Choices: []string{"failed", "warning", "never"}},
		"archive_dir":  {Type: ansible.TypePath},
	}}.Merge(modutil.LayoutSpec).Merge(modutil.DBSpec).Merge(modutil.S3Spec),
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
	// fleetsafe_backup_verify_success 0 and no backup status, so that the
	// values of an earlier run cannot keep the alerts green; the
	// quarantine, read now, is still shown when the app is known.
	failed := func(err error) (*ansible.Result, error) {
		mf := p.String("metrics_file")
		var q *backup.Quarantine
		if app != "" {
			var qerr error
			if q, qerr = quarantine(p.String("archive_dir"), app, start); qerr != nil {
				err = fmt.Errorf("%w; and %w", err, qerr)
			}
		}
		if mf == "" || req.CheckMode {
			return nil, err
		}
		if werr := backup.WriteFailedRunMetrics(mf, app, start, q); werr != nil {
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
	s3, err := modutil.S3Settings(p)
	if err != nil {
		return failed(err)
	}
	rep, err := backup.Verify(ctx, layout, backup.Options{
		Names: p.Strings("names"), RestoreTest: restore, StateFile: state, Discovery: modutil.Options(p),
		ArchiveDir: p.String("archive_dir"), Now: start, S3: s3,
	})
	if err != nil {
		return failed(err)
	}
	res := &ansible.Result{}
	res.Set("instances", rep.Instances).Set("summary", rep.Summary).Set("orphans", rep.Orphans).Set("app", rep.App)
	var drillRes *recovery.DrillResult
	var drillSuccess map[string]time.Time
	var drillErr error
	if p.Bool("drill") && !req.CheckMode {
		// Restores into scratch places, removed whatever happens; the
		// rotation is remembered. Neither happens in check mode.
		var err error
		drillRes, drillSuccess, err = drill(ctx, layout, rep, state, modutil.Options(p), s3, start)
		if drillRes != nil {
			res.Set("drill", drillRes)
			if drillRes.Changed {
				res.Changed = true
			}
		}
		if err != nil {
			// A drill that could not run (the instance busy, its state
			// unreadable) is a finding; the metrics are still written.
			drillErr = err
		}
	}
	for _, w := range rep.Warnings {
		res.Warn("%s", w)
	}
	for _, o := range rep.Orphans {
		res.Warn("backups of %s (component %s) have no instance on this host: %s", o.Name, o.Component, strings.Join(o.Files, ", "))
	}
	q, qerr := quarantine(p.String("archive_dir"), app, start)
	if mf := p.String("metrics_file"); mf != "" && !req.CheckMode {
		if err := rep.WriteMetricsWith(mf, backup.MetricsOptions{Rules: layout.Backups, Quarantine: q, DrillSuccess: drillSuccess}); err != nil {
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
	if f := drillFinding(drillRes); f != "" && failOn != "never" {
		bad = append(bad, f)
	}
	if drillErr != nil {
		bad = append(bad, drillErr.Error())
	}
	s := rep.Summary
	summary := fmt.Sprintf("%d instances: %d ok, %d warning, %d failed", s.Instances, s.OK, s.Warning, s.Failed)
	if len(bad) > 0 {
		err := fmt.Errorf("backups of %d instance(s) at or above %s: %s; %s", len(bad), failOn, strings.Join(bad, " | "), summary)
		if qerr != nil {
			err = fmt.Errorf("%w; and %w", err, qerr)
		}
		return res, err
	}
	if qerr != nil {
		return res, fmt.Errorf("%w; the backups were checked (%s)", qerr, summary)
	}
	res.Msg = summary
	return res, nil
}

// quarantine reads the deletions of app still in quarantine under
// archiveDir, for the metrics: nil when no archive_dir is given. Why here:
// backup_verify is the run that is scheduled nightly and already writes
// the metrics file of the app with the archive_dir of the host, so the
// quarantine is measured as often as the backups, in the same atomic
// file, and the "verify has not run" alert covers both. A tombstone that
// cannot be read is an error naming it (the task fails), and the metrics
// say so with fleetsafe_quarantine_read_success 0 beside every deletion
// that could be read.
func quarantine(archiveDir, app string, now time.Time) (*backup.Quarantine, error) {
	if archiveDir == "" {
		return nil, nil
	}
	list, err := softdelete.ListQuarantine(archiveDir, app, now)
	q := &backup.Quarantine{ReadOK: err == nil, Deletions: make([]backup.QuarantinedDeletion, 0, len(list))}
	for _, d := range list {
		q.Deletions = append(q.Deletions, backup.QuarantinedDeletion{Name: d.Instance, ID: d.ID, State: d.State, DeletedAt: d.DeletedAt, PurgeAfter: d.PurgeAfter})
	}
	if err != nil {
		return q, fmt.Errorf("quarantine of %s: %w", archiveDir, err)
	}
	return q, nil
}
