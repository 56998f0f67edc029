package instancepurge

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// Module removes quarantined data after retention, and old archives.
var Module = ansible.Module{
	Name: "instance_purge",
	Spec: ansible.Spec{Params: map[string]ansible.Param{
		"name":      {Type: ansible.TypeStr},
		"keep_last": {Type: ansible.TypeInt, Default: int64(1)},
		// The layout is optional here: without one, every layout of
		// layouts_dir is the host's, and the purge covers every app.
		"layout":      {Type: ansible.TypeDict},
		"layout_file": {Type: ansible.TypePath},
		"layouts_dir": {Type: ansible.TypePath, Default: instance.DefaultLayoutsDir},
	}, MutuallyExclusive: [][]string{{"layout", "layout_file"}}}.Merge(modutil.DBSpec).Merge(modutil.StoreSpec),
	Run: run,
}

// layouts returns the host's layouts and the app the purge is restricted
// to: the layout given and the others of layouts_dir, that layout's app;
// or, with no layout given, every layout of layouts_dir (checked together
// for overlaps) and every app.
func layouts(p ansible.Params) ([]*instance.Layout, string, error) {
	if p.String("layout_file") != "" || p.Dict("layout") != nil {
		l, err := modutil.Layout(p)
		if err != nil {
			return nil, "", err
		}
		return append([]*instance.Layout{l}, l.Others...), l.App, nil
	}
	dir := p.String("layouts_dir")
	if dir == "" {
		dir = instance.DefaultLayoutsDir
	}
	host, err := instance.LoadLayoutsDir(dir, dir == instance.DefaultLayoutsDir)
	if err != nil {
		return nil, "", err
	}
	if err := instance.CheckLayouts(host...); err != nil {
		return nil, "", err
	}
	return host, "", nil
}

func run(ctx context.Context, req *ansible.Request) (*ansible.Result, error) {
	p := req.Params
	host, app, err := layouts(p)
	if err != nil {
		return nil, err
	}
	st, err := modutil.Store(ctx, p)
	if err != nil {
		return nil, err
	}
	out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{
		ArchiveDir: p.String("archive_dir"), Store: st, Name: p.String("name"), KeepLast: int(p.Int("keep_last")),
		CheckMode: req.CheckMode, PG: modutil.PG(p), Settings: modutil.Settings(p), Layouts: host, App: app,
	})
	if out == nil {
		out = &softdelete.PurgeResult{Purged: []softdelete.Purged{}, Kept: []softdelete.Kept{}, Refused: []softdelete.Refused{}, AlreadyGone: []softdelete.Purged{}, Orphans: []softdelete.Orphan{}}
	}
	// changed: something was removed or renamed (in check mode: would be).
	changed := out.Changed
	if req.CheckMode {
		changed = len(out.Purged) > 0 || softdelete.OrphansChanged(out.Orphans)
	}
	res := &ansible.Result{Changed: changed}
	res.Set("orphans", out.Orphans)
	for _, o := range out.Orphans {
		res.Warn("%s", o.String())
	}
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
		var before strings.Builder
		for _, x := range out.Purged {
			before.WriteString(x.Path + "\n")
		}
		res.Diff = &ansible.Diff{Before: before.String(), After: "", BeforeHeader: "kept", AfterHeader: "purged"}
	}
	return res, nil
}
