package instancerestore

import (
	"context"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// Module restores an instance from quarantine, from an archive, or from
// its regular backups.
var Module = ansible.Module{
	Name: "instance_restore",
	Spec: ansible.Spec{Params: map[string]ansible.Param{
		"name":                  {Type: ansible.TypeStr, Required: true},
		"source":                {Type: ansible.TypeStr, Default: "auto", Choices: []string{"auto", "quarantine", "archive", "backup"}},
		"archive":               {Type: ansible.TypePath},
		"components":            {Type: ansible.TypeList, Elements: ansible.TypeStr},
		"force":                 {Type: ansible.TypeBool, Default: false},
		"relocate":              {Type: ansible.TypeBool, Default: false},
		"decrypt_identity_file": {Type: ansible.TypePath},
	}}.Merge(modutil.LayoutSpec).Merge(modutil.DBSpec).Merge(modutil.OptionalStoreSpec),
	Run: run,
}

func run(ctx context.Context, req *ansible.Request) (*ansible.Result, error) {
	layout, err := modutil.Layout(req.Params)
	if err != nil {
		return nil, err
	}
	p := req.Params
	if p.String("source") == "backup" {
		if p.String("archive_store") != "" {
			return nil, &ansible.ParamError{Msg: "source=backup takes archive_dir (where a forced restore moves a replaced component aside), not archive_store=" + p.String("archive_store")}
		}
		return runBackup(ctx, req, layout)
	}
	if p.String("archive_dir") == "" && p.String("archive_store") == "" {
		return nil, &ansible.ParamError{Msg: "archive_dir or archive_store is required unless source is backup"}
	}
	st, err := modutil.Store(ctx, p)
	if err != nil {
		return nil, err
	}
	r, err := softdelete.Restore(ctx, layout, softdelete.RestoreRequest{
		Name: p.String("name"), ArchiveDir: p.String("archive_dir"), Store: st, Source: p.String("source"),
		Archive: p.String("archive"), Components: p.Strings("components"), Force: p.Bool("force"), Relocate: p.Bool("relocate"), CheckMode: req.CheckMode,
		Options: modutil.Options(p), AfterStep: modutil.CrashHook(), Progress: modutil.Progress(ctx),
	})
	if r == nil {
		return nil, err
	}
	// A failed restore still says what moved.
	res := &ansible.Result{Changed: r.Changed, Msg: r.Msg}
	return res.Set("restored", r.Restored).Set("not_restored", r.NotRestored).Set("source", r.Source).
		Set("sources", r.Sources).Set("archive", r.Archive).Set("archives", r.Archives).
		Set("replaced", r.Replaced).Set("notes", r.Notes).Set("relocated", r.Relocated).Set("orphans", r.Orphans), err
}
