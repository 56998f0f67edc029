package modutil

import (
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// Layout loads the layout given as layout or layout_file, then the other
// layouts of the host from layouts_dir, and refuses the lot when any two
// components, in one layout or across them, can denote the same path,
// database or unit or contain one another. The layout returned knows the
// host's other layouts, for discovery's run-time check. The default
// layouts_dir may be missing (no other layouts); one given explicitly
// must exist.
func Layout(p ansible.Params) (*instance.Layout, error) {
	var l *instance.Layout
	var err error
	switch {
	case p.String("layout_file") != "":
		l, err = instance.LoadLayoutFile(p.String("layout_file"))
	case p.Dict("layout") != nil:
		l, err = instance.LayoutFromMap(p.Dict("layout"))
	default:
		return nil, instance.ErrNoLayout
	}
	if err != nil {
		return nil, err
	}
	dir := p.String("layouts_dir")
	if dir == "" {
		dir = instance.DefaultLayoutsDir
	}
	host, err := instance.LoadLayoutsDir(dir, dir == instance.DefaultLayoutsDir)
	if err != nil {
		return nil, err
	}
	if err := l.WithHost(host); err != nil {
		return nil, err
	}
	return l, nil
}
