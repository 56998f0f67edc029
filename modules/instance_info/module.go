package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// Module discovers instances; it never changes anything.
var Module = ansible.Module{
	Name: "instance_info",
	Spec: ansible.Spec{Params: map[string]ansible.Param{
		"name":  {Type: ansible.TypeStr},
		"sizes": {Type: ansible.TypeBool, Default: true},
		// archive_dir, with name: also say whether the host holds
		// archives or tombstones of the name (restore_instance.yml's
		// search, with no Python on the target).
		"archive_dir": {Type: ansible.TypePath},
	}}.Merge(modutil.LayoutSpec).Merge(modutil.PGSpec),
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

	if req.Params.Has("name") {
		name := req.Params.String("name")
		inst, err := layout.Resolve(ctx, name, opts)
		var nf *instance.NotFoundError
		if err == nil || errors.As(err, &nf) {
			// The name passed the layout's checks: it is one path element.
			if aerr := setArchived(res, req.Params, name); aerr != nil {
				return res.Set("found", false), aerr
			}
		}
		switch {
		case errors.As(err, &nf):
			// The play, not the host, decides how many matches are fine.
			res.Msg = nf.Error()
			return res.Set("found", false).Set("target", nil).Set("fingerprint", nil).
				Set("instances", []*instance.Instance{}), nil
		case err != nil:
			return res.Set("found", false), err
		}
		return res.Set("found", true).Set("target", inst).Set("fingerprint", inst.Fingerprint()).
			Set("instances", []*instance.Instance{inst}), nil
	}

	insts, err := layout.Discover(ctx, opts)
	if err != nil {
		return nil, err
	}
	partial := 0
	for _, i := range insts {
		if i.Status == instance.StatusPartial {
			partial++
		}
	}
	return res.Set("instances", insts).Set("count", len(insts)).Set("partial_count", partial), nil
}

// setArchived sets archived: whether <archive_dir>/<name> is a directory
// (the soft delete keeps an instance's archives and tombstones there).
func setArchived(res *ansible.Result, p ansible.Params, name string) error {
	if !p.Has("archive_dir") {
		return nil
	}
	dir := filepath.Join(p.String("archive_dir"), name)
	st, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Set("archived", false)
	case err != nil:
		return fmt.Errorf("look for archives of %s: %w", name, err)
	case !st.IsDir():
		return fmt.Errorf("look for archives of %s: %s is not a directory (%s)", name, dir, st.Mode())
	default:
		res.Set("archived", true)
	}
	return nil
}
