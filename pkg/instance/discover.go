package instance

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/systemd"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// Options tunes discovery. The zero value discovers this host with sizes.
type Options struct {
	// Host is the host name reported in results; HostID identifies the
	// host in fingerprints. Both default to this host's.
	Host   string
	HostID string
	// PG is how to reach the PostgreSQL server holding the databases of
	// postgresql components.
	PG pgdump.Conn
	// SkipSizes skips walking directories for sizes and last modification
	// (the top-level modification time is still reported).
	SkipSizes bool
	// SystemdDir is where unit files and enablement links live; default
	// /etc/systemd/system.
	SystemdDir string
	// Systemctl is the systemctl command to ask for unit states. When
	// empty, systemctl is used only if a running systemd answers
	// (/run/systemd/system exists).
	Systemctl string
	// Settings holds the connection settings of other kinds, keyed by
	// kind type (kind.Env.Settings): a new kind's settings go here. PG,
	// SystemdDir and Systemctl, when set, fill those of postgresql and
	// systemd_unit.
	Settings map[string]any
}

func (o Options) withDefaults() Options {
	if o.Host == "" {
		o.Host = Hostname()
	}
	if o.HostID == "" {
		o.HostID = HostIdentity()
	}
	if o.SystemdDir == "" {
		o.SystemdDir = systemd.DefaultDir
	}
	return o
}

// Env is the environment the component kinds receive.
func (o Options) Env() kind.Env {
	env := kind.Env{Settings: maps.Clone(o.Settings)}
	if o.PG != (pgdump.Conn{}) || env.Setting(postgresql.Type) == nil {
		env = env.With(postgresql.Type, o.PG)
	}
	if o.SystemdDir != "" || o.Systemctl != "" || env.Setting(systemd.Type) == nil {
		env = env.With(systemd.Type, systemd.Settings{Dir: o.SystemdDir, Systemctl: o.Systemctl})
	}
	return env
}

// Discover returns every instance of the layout on this host: the union of
// the names found by all components, sorted by name. Entries outside
// name_pattern, hidden entries (such as .fleetsafe-trash) and files where a
// directory is expected are not instances. An unreachable database server
// is an error, never an empty result. An instance that shares a path,
// database or unit with another (instance, component) pair of the host
// (this layout or l.Others), or whose path contains or lies in another's,
// fails discovery with a *ClaimError naming both.
func (l *Layout) Discover(ctx context.Context, opts Options) ([]*Instance, error) {
	opts = opts.withDefaults()
	s := newScan(l, opts)
	defer s.close()
	if err := l.checkHost(ctx, s, ""); err != nil {
		return nil, err
	}

	names := map[string]bool{}
	for _, c := range l.Components {
		found, err := s.names(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("discover component %s: %w", c.Name, err)
		}
		for _, n := range found {
			if l.ValidateName(n) == nil {
				names[n] = true
			}
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	out := make([]*Instance, 0, len(sorted))
	for _, n := range sorted {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		inst, err := s.instance(ctx, n)
		if err != nil {
			return nil, err
		}
		// A name whose components are all gone (an emptied {name}
		// directory after quarantine) is not an instance.
		if slices.ContainsFunc(inst.Components, func(c ComponentState) bool { return c.Present }) {
			out = append(out, inst)
		}
	}
	return out, nil
}

// Resolve returns the instance with exactly this name. The name is
// validated before anything is looked at; a name with no present
// component is a *NotFoundError. A name whose locators another (instance,
// component) pair of the host claims, contains or lies in is a
// *ClaimError naming both.
func (l *Layout) Resolve(ctx context.Context, name string, opts Options) (*Instance, error) {
	if err := l.ValidateName(name); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	s := newScan(l, opts)
	defer s.close()
	if err := l.checkHost(ctx, s, name); err != nil {
		return nil, err
	}
	inst, err := s.instance(ctx, name)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(inst.Components, func(c ComponentState) bool { return c.Present }) {
		return inst, &NotFoundError{Name: name, App: l.App, Host: opts.Host}
	}
	return inst, nil
}

// scan is one discovery run: the layout, its options, and what the kinds
// list once per run (kind.Scan).
type scan struct {
	layout *Layout
	opts   Options
	ks     *kind.Scan
}

func newScan(l *Layout, opts Options) *scan {
	return &scan{layout: l, opts: opts, ks: &kind.Scan{Env: opts.Env(), Sizes: !opts.SkipSizes}}
}

func (s *scan) close() { s.ks.Close() }

func (s *scan) names(ctx context.Context, c Component) ([]string, error) {
	k, ok := c.Kind()
	if !ok {
		return nil, fmt.Errorf("unknown component type %q", c.Type)
	}
	return k.Names(ctx, s.ks, c)
}

func (s *scan) instance(ctx context.Context, name string) (*Instance, error) {
	inst := &Instance{Name: name, App: s.layout.App, Host: s.opts.Host, hostID: s.opts.HostID}
	for _, c := range s.layout.Components {
		k, ok := c.Kind()
		if !ok {
			return nil, fmt.Errorf("instance %s component %s: unknown component type %q", name, c.Name, c.Type)
		}
		st, err := k.State(ctx, s.ks, c, name)
		if err != nil {
			return nil, fmt.Errorf("instance %s component %s: %w", name, c.Name, err)
		}
		st.Name, st.Type, st.Optional = c.Name, c.Type, c.Optional
		inst.Components = append(inst.Components, st)
	}
	inst.summarize()
	return inst, nil
}
