package instance

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"

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
}

func (o Options) withDefaults() Options {
	if o.Host == "" {
		o.Host = Hostname()
	}
	if o.HostID == "" {
		o.HostID = HostIdentity()
	}
	if o.SystemdDir == "" {
		o.SystemdDir = "/etc/systemd/system"
	}
	return o
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
	s := &scan{layout: l, opts: opts}
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
	s := &scan{layout: l, opts: opts}
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

// scan holds what one discovery run shares between components: the
// database connection and the list of databases.
type scan struct {
	layout *Layout
	opts   Options
	db     *sql.DB
	dbs    map[string]dbInfo
	units  map[string]string
}

type dbInfo struct {
	size     int64
	allowCon bool
}

func (s *scan) close() {
	if s.db != nil {
		s.db.Close()
	}
}

func (s *scan) names(ctx context.Context, c Component) ([]string, error) {
	switch c.Type {
	case TypeDir, TypeFile:
		return pathNames(c)
	case TypePostgreSQL:
		dbs, err := s.databases(ctx)
		if err != nil {
			return nil, err
		}
		var out []string
		for d := range dbs {
			if n, ok := c.Template.Match(d); ok {
				out = append(out, n)
			}
		}
		return out, nil
	case TypeSystemdUnit:
		return s.unitNames(ctx, c)
	}
	return nil, fmt.Errorf("unknown component type %q", c.Type)
}

func (s *scan) instance(ctx context.Context, name string) (*Instance, error) {
	inst := &Instance{Name: name, App: s.layout.App, Host: s.opts.Host, hostID: s.opts.HostID}
	for _, c := range s.layout.Components {
		var st ComponentState
		var err error
		switch c.Type {
		case TypeDir, TypeFile:
			st, err = pathState(c, name, !s.opts.SkipSizes)
		case TypePostgreSQL:
			st, err = s.databaseState(ctx, c, name)
		case TypeSystemdUnit:
			st, err = s.unitState(ctx, c, name)
		}
		if err != nil {
			return nil, fmt.Errorf("instance %s component %s: %w", name, c.Name, err)
		}
		st.Name, st.Type, st.Optional = c.Name, c.Type, c.Optional
		inst.Components = append(inst.Components, st)
	}
	inst.summarize()
	return inst, nil
}

func (s *scan) databases(ctx context.Context) (map[string]dbInfo, error) {
	if s.dbs != nil {
		return s.dbs, nil
	}
	if s.db == nil {
		db, err := s.opts.PG.Open(ctx, "postgres")
		if err != nil {
			return nil, err
		}
		s.db = db
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT datname, pg_database_size(oid), datallowconn FROM pg_database WHERE NOT datistemplate`)
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	defer rows.Close()
	dbs := map[string]dbInfo{}
	for rows.Next() {
		var name string
		var info dbInfo
		var size sql.NullInt64
		if err := rows.Scan(&name, &size, &info.allowCon); err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		if !size.Valid {
			// Dropped between the listing and its size: gone.
			continue
		}
		info.size = size.Int64
		dbs[name] = info
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	s.dbs = dbs
	return dbs, nil
}

func (s *scan) databaseState(ctx context.Context, c Component, name string) (ComponentState, error) {
	st := ComponentState{Locator: c.Template.Expand(name)}
	dbs, err := s.databases(ctx)
	if err != nil {
		return st, err
	}
	info, ok := dbs[st.Locator]
	if !ok {
		return st, nil
	}
	st.Present = true
	size := info.size
	st.SizeBytes = &size
	if !info.allowCon {
		st.Problem = "database does not accept connections (datallowconn is false)"
	}
	return st, nil
}
