package instancepurge

import (
	"context"
	"fmt"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// Module removes quarantined data after retention, and old archives.
var Module = ansible.Module{
	Name: "instance_purge",
	Spec: ansible.Spec{Params: map[string]ansible.Param{
		"archive_dir": {Type: ansible.TypePath, Required: true},
		"name":        {Type: ansible.TypeStr},
		"keep_last":   {Type: ansible.TypeInt, Default: int64(1)},
	}}.Merge(modutil.PGSpec),
	Run: run,
}

func run(ctx context.Context, req *ansible.Request) (*ansible.Result, error) {
	p := req.Params
	out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{
		ArchiveDir: p.String("archive_dir"), Name: p.String("name"), KeepLast: int(p.Int("keep_last")),
		CheckMode: req.CheckMode, PG: modutil.PG(p),
	})
	if out == nil {
		out = &softdelete.PurgeResult{Purged: []softdelete.Purged{}, Kept: []softdelete.Kept{}, Refused: []softdelete.Refused{}, AlreadyGone: []softdelete.Purged{}}
	}
	// changed: something was removed or renamed (in check mode: would be).
	changed := out.Changed
	if req.CheckMode {
		changed = len(out.Purged) > 0
	}
	res := &ansible.Result{Changed: changed}
	res.Set("purged", out.Purged)
	res.Set("kept", out.Kept)
	res.Set("refused", out.Refused)
	res.Set("already_gone", out.AlreadyGone)
	if err != nil {
		return res, err
	}
	if len(out.Purged) > 0 {
		verb := "purged"
		if req.CheckMode {
			verb = "would purge"
		}
		res.Msg = fmt.Sprintf("%s %d item(s), kept %d", verb, len(out.Purged), len(out.Kept))
	} else {
		res.Msg = fmt.Sprintf("nothing due; kept %d item(s)", len(out.Kept))
	}
	if req.DiffMode && len(out.Purged) > 0 {
		var before []string
		for _, x := range out.Purged {
			before = append(before, x.Path)
		}
		res.Diff = &ansible.Diff{Before: before, After: []string{}, BeforeHeader: "kept", AfterHeader: "purged"}
	}
	return res, nil
}
