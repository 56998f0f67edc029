package main

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
	purged, err := softdelete.Purge(ctx, softdelete.PurgeRequest{
		ArchiveDir: p.String("archive_dir"), Name: p.String("name"), KeepLast: int(p.Int("keep_last")),
		CheckMode: req.CheckMode, PG: modutil.PG(p),
	})
	res := &ansible.Result{Changed: len(purged) > 0}
	res.Set("purged", purged)
	if err != nil {
		return res, err
	}
	if len(purged) > 0 {
		verb := "purged"
		if req.CheckMode {
			verb = "would purge"
		}
		res.Msg = fmt.Sprintf("%s %d item(s)", verb, len(purged))
	}
	if req.DiffMode && len(purged) > 0 {
		var before []string
		for _, x := range purged {
			before = append(before, x.Path)
		}
		res.Diff = &ansible.Diff{Before: before, After: []string{}, BeforeHeader: "kept", AfterHeader: "purged"}
	}
	return res, nil
}
