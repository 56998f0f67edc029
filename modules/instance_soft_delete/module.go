package instancesoftdelete

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// Module archives, verifies, tombstones and quarantines one instance.
var Module = ansible.Module{
	Name: "instance_soft_delete",
	Spec: ansible.Spec{Params: map[string]ansible.Param{
		"name":           {Type: ansible.TypeStr, Required: true},
		"reason":         {Type: ansible.TypeStr, Required: true},
		"requested_by":   {Type: ansible.TypeStr},
		"job_id":         {Type: ansible.TypeStr},
		"launch":         {Type: ansible.TypeDict},
		"fingerprint":    {Type: ansible.TypeStr},
		"retention_days": {Type: ansible.TypeInt, Default: int64(30)},
		"stop_service":   {Type: ansible.TypeBool, Default: false},
		"object_lock":    {Type: ansible.TypeStr, Choices: softdelete.ObjectLockModes},
		"legal_hold":     {Type: ansible.TypeBool, Default: false},
		"encrypt_to":     {Type: ansible.TypeList, Elements: ansible.TypeStr},
		"accept_losses":  {Type: ansible.TypeList, Elements: ansible.TypeStr, Choices: archive.AcceptableLosses},
	}}.Merge(modutil.LayoutSpec).Merge(modutil.DBSpec).Merge(modutil.StoreSpec),
	Run: run,
}

func run(ctx context.Context, req *ansible.Request) (*ansible.Result, error) {
	layout, err := modutil.Layout(req.Params)
	if err != nil {
		return nil, err
	}
	p := req.Params
	launch, err := softdelete.ParseLaunch(p.Dict("launch"))
	if err != nil {
		return nil, err
	}
	st, err := modutil.Store(ctx, p)
	if err != nil {
		return nil, err
	}
	r, err := softdelete.Delete(ctx, layout, softdelete.Request{
		Name: p.String("name"), ArchiveDir: p.String("archive_dir"), Store: st, Reason: p.String("reason"),
		ObjectLock: p.String("object_lock"), LegalHold: p.Bool("legal_hold"),
		RequestedBy: p.String("requested_by"), JobID: p.String("job_id"), Launch: launch, Fingerprint: p.String("fingerprint"),
		RetentionDays: int(p.Int("retention_days")), StopService: p.Bool("stop_service"), AcceptLosses: p.Strings("accept_losses"),
		CheckMode: req.CheckMode, Options: modutil.Options(p), AfterStep: stepHook(), Progress: modutil.Progress(ctx),
	})
	if r == nil {
		// Nothing was moved (a refusal, or a failure before the first
		// move): the library returns no result then.
		return nil, err
	}
	// With an error too: what moved before the failure is reported, and
	// changed says so.
	res := &ansible.Result{Changed: r.Changed, Msg: r.Msg}
	res.Set("archive", r.Archive).Set("tombstone", r.Tombstone).Set("quarantined", r.Quarantined)
	if r.Orphans == nil {
		r.Orphans = []softdelete.Orphan{}
	}
	res.Set("orphans", r.Orphans)
	if r.ArchiveLock != nil {
		res.Set("archive_lock", r.ArchiveLock)
	}
	if len(r.Losses) > 0 {
		// losses is bounded (the first of each kind in each component);
		// loss_counts and losses_total count every one, and the archive's
		// manifest lists every one. One warning per listed loss, and one
		// per kind and component for those not listed.
		res.Set("losses", r.Losses).Set("loss_counts", r.LossCounts).Set("losses_total", r.LossesTotal)
		for _, l := range r.Losses {
			res.Warn("accepted loss (%s): %s is %s", l.Kind, l.Path, l.What)
		}
		for _, c := range r.LossCounts {
			if more := c.Count - min(c.Count, archive.ListedPerKind); more > 0 {
				res.Warn("accepted loss (%s): %d more in component %s, not listed here; the archive's manifest (losses) names every one", c.Kind, more, c.Component)
			}
		}
	}
	for _, w := range r.Warnings {
		res.Warn("%s", w)
	}
	if r.Plan != nil {
		res.Set("plan", r.Plan)
	}
	if err != nil {
		return res, err
	}
	if req.DiffMode && r.Changed {
		var before, after strings.Builder
		for _, q := range r.Quarantined {
			fmt.Fprintf(&before, "%s: %s\n", q.Component, q.From)
			fmt.Fprintf(&after, "%s: %s\n", q.Component, q.To)
		}
		res.Diff = &ansible.Diff{Before: before.String(), After: after.String(), BeforeHeader: "in place", AfterHeader: "quarantined"}
	}
	return res, nil
}
