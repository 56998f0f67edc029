package instanceinfo

import (
	"context"
	"errors"

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
