package instanceinfo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Module discovers instances; it never changes anything.
var Module = ansible.Module{
	Name: "instance_info",
	Spec: ansible.Spec{Params: map[string]ansible.Param{
		"name":   {Type: ansible.TypeStr},
		"sizes":  {Type: ansible.TypeBool, Default: true},
		"damage": {Type: ansible.TypeBool, Default: false},
	}}.Merge(modutil.LayoutSpec).Merge(modutil.DBSpec).Merge(modutil.OptionalStoreSpec),
	Run: run,
}

func run(ctx context.Context, req *ansible.Request) (*ansible.Result, error) {
	layout, err := modutil.Layout(req.Params)
	if err != nil {
		return nil, err
	}
	opts := modutil.Options(req.Params)
	opts.SkipSizes = !req.Params.Bool("sizes")
	res := &ansible.Result{}
	res.Set("app", layout.App)
	if req.Params.Bool("damage") {
		if loc := req.Params.String("archive_store"); loc != "" {
			return nil, &ansible.ParamError{Msg: "damage reads the names soft-deleted on purpose from archive_dir, not archive_store=" + loc}
		}
		return damage(ctx, req, layout, opts, res)
	}
	// archive_store (a bucket): opened once, before anything is looked at.
	st, err := modutil.Store(ctx, req.Params)
	if err != nil {
		return nil, err
	}

	if req.Params.Has("name") {
		name := req.Params.String("name")
		inst, err := layout.Resolve(ctx, name, opts)
		var nf *instance.NotFoundError
		if err == nil || errors.As(err, &nf) {
			// The name passed the layout's checks: it is one path element.
			if aerr := setArchived(ctx, st, res, req.Params, name); aerr != nil {
				return res.Set("found", false), aerr
			}
		}
		switch {
		case errors.As(err, &nf):
			// The play, not the host, decides how many matches are fine.
			res.Msg = nf.Error()
			return res.Set("found", false).Set("target", nil).Set("fingerprint", nil).
				Set("instances", []*instance.Instance{}), listQuarantine(ctx, st, req, layout.App, res)
		case err != nil:
			// A refused name: nothing else is looked at.
			return res.Set("found", false), err
		}
		return res.Set("found", true).Set("target", inst).Set("fingerprint", inst.Fingerprint()).
			Set("instances", []*instance.Instance{inst}), listQuarantine(ctx, st, req, layout.App, res)
	}

	// The quarantine is listed even when discovery then fails, so that
	// the fleet report shows what it could read.
	qerr := listQuarantine(ctx, st, req, layout.App, res)
	insts, err := layout.Discover(ctx, opts)
	if err != nil {
		return res, errors.Join(err, qerr)
	}
	partial := 0
	for _, i := range insts {
		if i.Status == instance.StatusPartial {
			partial++
		}
	}
	return res.Set("instances", insts).Set("count", len(insts)).Set("partial_count", partial), qerr
}

// listQuarantine sets quarantined (and quarantined_count) from the
// tombstones of archive_dir, for the layout's app (and the given name):
// every soft deletion with something still in quarantine, with reason,
// who, archive and purge time. A tombstone that cannot be read is
// returned as an error naming it; the other deletions are still listed.
func listQuarantine(ctx context.Context, st store.Store, req *ansible.Request, app string, res *ansible.Result) error {
	dir := req.Params.String("archive_dir")
	var list []softdelete.Quarantine
	var err error
	switch {
	case st != nil:
		dir = st.Location("")
		list, err = softdelete.ListQuarantineIn(ctx, st, app, time.Now())
	case dir == "":
		return nil
	default:
		list, err = softdelete.ListQuarantine(dir, app, time.Now())
	}
	if name := req.Params.String("name"); req.Params.Has("name") {
		kept := list[:0]
		for _, q := range list {
			if q.Instance == name {
				kept = append(kept, q)
			}
		}
		list = kept
	}
	res.Set("quarantined", list).Set("quarantined_count", len(list))
	if err != nil {
		return fmt.Errorf("quarantine of %s: %w", dir, err)
	}
	return nil
}

// setArchived sets archived: whether the archive store holds a folder for
// name (<archive_dir>/<name>, a directory, for the file store: the soft
// delete keeps an instance's archives and tombstones there; for a
// bucket, whether objects are filed under <prefix>/<name>/).
func setArchived(ctx context.Context, st store.Store, res *ansible.Result, p ansible.Params, name string) error {
	if st == nil {
		if !p.Has("archive_dir") {
			return nil
		}
		var err error
		if st, err = store.Open(ctx, p.String("archive_dir")); err != nil {
			return fmt.Errorf("look for archives of %s: %w", name, err)
		}
	}
	folders, err := store.ListFolders(ctx, st)
	if err != nil {
		return fmt.Errorf("look for archives of %s: %w", name, err)
	}
	archived := false
	for _, f := range folders {
		if f.Name != name {
			continue
		}
		if f.NotDir != "" {
			return fmt.Errorf("look for archives of %s: %s is not a directory (%s)", name, st.Location(name), f.NotDir)
		}
		archived = true
	}
	res.Set("archived", archived)
	return nil
}
