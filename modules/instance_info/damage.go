package instanceinfo

import (
	"context"
	"fmt"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
)

// damage is damage=true: the inventory of the damage (pkg/recovery), of
// the instance name only when given.
func damage(ctx context.Context, req *ansible.Request, l *instance.Layout, opts instance.Options, res *ansible.Result) (*ansible.Result, error) {
	if req.Params.Has("name") {
		if err := l.ValidateName(req.Params.String("name")); err != nil {
			return res, err
		}
	}
	// The s3_* parameters reach the buckets of backup rules that name
	// objects (s3://bucket/prefix/{name}/...), as in backup_verify.
	s3, err := modutil.S3Settings(req.Params)
	if err != nil {
		return res, err
	}
	rep, err := recovery.Inventory(ctx, l, recovery.DamageOptions{ArchiveDir: req.Params.String("archive_dir"), Options: opts, S3: s3})
	if err != nil {
		return res, err
	}
	damaged := rep.Damaged
	if req.Params.Has("name") {
		damaged = []recovery.Damaged{}
		for _, d := range rep.Damaged {
			if d.Name == req.Params.String("name") {
				damaged = append(damaged, d)
			}
		}
	}
	unrestorable := 0
	for _, d := range damaged {
		if !d.Restorable {
			unrestorable++
		}
	}
	res.Msg = fmt.Sprintf("%d damaged instance(s) of %s, %d of them not fully restorable from backups", len(damaged), l.App, unrestorable)
	return res.Set("damaged", damaged).Set("damaged_count", len(damaged)).Set("unrestorable_count", unrestorable).
		Set("uncertain_backups", rep.Uncertain).Set("soft_deleted", rep.SoftDeleted), nil
}
