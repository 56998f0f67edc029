package instancerestore

import (
	"context"
	"errors"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
)

// runBackup is source=backup: each component from the newest good backup
// of its backup rule (pkg/recovery).
func runBackup(ctx context.Context, req *ansible.Request, layout *instance.Layout) (*ansible.Result, error) {
	p := req.Params
	if p.String("archive") != "" {
		return nil, errors.New("archive names one of fleetsafe's archives: it cannot be given with source: backup")
	}
	s3, err := modutil.S3Settings(p)
	if err != nil {
		return nil, err
	}
	r, err := recovery.Restore(ctx, layout, recovery.Request{
		Name: p.String("name"), Components: p.Strings("components"), Force: p.Bool("force"),
		ArchiveDir: p.String("archive_dir"), CheckMode: req.CheckMode, Options: modutil.Options(p),
		AfterStep: modutil.CrashHook(), S3: s3,
	})
	if r == nil {
		return nil, err
	}
	return Result(r, req.CheckMode), err
}

// Result is the module result of a restore from backups (the command
// line prints the same).
func Result(r *recovery.Result, check bool) *ansible.Result {
	sources := map[string]string{}
	notRestored := []string{}
	replaced := []map[string]string{}
	for _, c := range r.Components {
		switch {
		case (c.Status == recovery.StatusRestored || c.Status == recovery.StatusWouldRestore) && c.Backup != nil:
			sources[c.Component] = "backup:" + c.Backup.Path
		default:
			notRestored = append(notRestored, c.Component)
		}
		if c.Replaced != "" {
			replaced = append(replaced, map[string]string{"component": c.Component, "from": c.Locator, "to": c.Replaced})
		}
	}
	res := &ansible.Result{Changed: r.Changed || check && len(r.Restored) > 0, Msg: r.Msg}
	res.Set("restored", r.Restored).Set("not_restored", notRestored).Set("source", "backup").Set("sources", sources).
		Set("archive", "").Set("archives", []string{}).Set("replaced", replaced).Set("notes", r.Notes).
		Set("recovery", r.Components)
	if r.RecoveryPoint != nil {
		res.Set("recovery_point", r.RecoveryPoint.UTC())
	} else {
		res.Set("recovery_point", nil)
	}
	return res
}
