// Package postgresql is the postgresql component kind: a database of a
// PostgreSQL server, archived as a pg_dump custom-format dump, quarantined
// by renaming it (closed to connections), restored into a staging
// database renamed into place. It is the one place outside pkg/pgdump that
// runs SQL on the server for soft delete, restore and purge.
package postgresql

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"regexp"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// Type is the layout's type of a PostgreSQL database component.
const Type = "postgresql"

// MaxDatabaseName is the longest database name PostgreSQL keeps whole
// (NAMEDATALEN - 1).
const MaxDatabaseName = 63

// Database name prefixes: quarantined, and being dropped. Both have the
// same length, so a quarantine name always has a purging name.
const (
	QuarantinePrefix = "fstrash_"
	PurgingPrefix    = "fspurge_"
	StagingPrefix    = "fsrestore_"
)

// ReservedPrefixes start the names of the databases fleetsafe creates or
// renames: quarantined (fstrash_), being purged (fspurge_), staged for a
// restore (fsrestore_, and fleetsafe_restore_ by RESTORE.md's steps) and
// restore-test scratch databases (fleetsafe_verify_). A layout may claim
// none of them: fleetsafe drops such databases as its own leftovers.
var ReservedPrefixes = []string{QuarantinePrefix, PurgingPrefix, StagingPrefix, "fleetsafe_restore_", ScratchPrefix}

// ScratchPrefix starts the name of every scratch database of a test
// restore; nothing else is ever dropped by backup verification.
const ScratchPrefix = "fleetsafe_verify_"

// Kind is the postgresql kind.
type Kind struct{}

var (
	_ kind.Kind          = Kind{}
	_ kind.RestoreTester = Kind{}
)

func init() { kind.Register(Kind{}) }

// Conn returns the PostgreSQL connection settings of env.
func Conn(env kind.Env) pgdump.Conn {
	c, _ := env.Setting(Type).(pgdump.Conn)
	return c
}

func (Kind) Type() string   { return Type }
func (Kind) Key() string    { return "database" }
func (Kind) Family() string { return kind.FamilyDatabase }
func (Kind) Noun() string   { return "database" }
func (Kind) Shape() kind.Shape {
	return kind.Dump
}
func (Kind) DumpExt() string { return ".pgdump" }

var allowedRE = regexp.MustCompile(`^[a-z0-9_]*$`)

// CheckTemplate allows lowercase letters, digits and _ and requires a
// literal prefix of the application's own, ending with _, outside the
// prefixes reserved for fleetsafe: the server's own databases (postgres,
// grafana…) never carry it, so only the application's names fit.
func (Kind) CheckTemplate(raw string) string {
	if strings.Count(raw, kind.Placeholder) != 1 {
		return "must contain {name} exactly once"
	}
	if !allowedRE.MatchString(strings.Replace(raw, kind.Placeholder, "", 1)) {
		return "characters not allowed in database names (lowercase letters, digits and _)"
	}
	t := kind.NewTemplate(raw)
	switch {
	case t.Prefix == "":
		return "a database template needs a literal prefix of the application's own before {name}, such as tracim_{name}: without one, every database of the server that fits name_pattern (postgres, grafana…) would be taken for an instance"
	case !strings.HasSuffix(t.Prefix, "_"):
		return fmt.Sprintf("the literal prefix %q must end with '_' (such as %s_{name}), so that it names a namespace of the application's own", t.Prefix, strings.TrimRight(t.Prefix, "_"))
	}
	for _, r := range ReservedPrefixes {
		if strings.HasPrefix(t.Prefix, r) {
			return "databases starting with " + r + " are fleetsafe's own (quarantined, being purged, staged for a restore or a restore test); a layout may not claim them"
		}
	}
	return ""
}

// ownerRE is what an owner template may hold once {name} is taken out:
// an unquoted role name's lowercase letters, digits and _.
var ownerRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$|^$`)

// CheckOwnerTemplate checks a layout's owner template (the role a
// postgresql component's database must belong to): {name} at most once,
// lowercase letters, digits and _, not a predefined role (pg_…) and not a
// temporary restore role of fleetsafe.
func CheckOwnerTemplate(raw string) string {
	if strings.Count(raw, kind.Placeholder) > 1 {
		return "must contain {name} at most once"
	}
	rest := strings.Replace(raw, kind.Placeholder, "", 1)
	switch {
	case rest == "" && raw != kind.Placeholder:
		return "must name a role"
	case !ownerRE.MatchString(rest) || (raw != "" && raw[0] >= '0' && raw[0] <= '9'):
		return "characters not allowed in role names (lowercase letters, digits and _, not starting with a digit)"
	case strings.HasPrefix(raw, "pg_"):
		return "roles starting with pg_ are PostgreSQL's own"
	case strings.HasPrefix(raw, restoreRolePrefix):
		return "roles starting with " + restoreRolePrefix + " are fleetsafe's temporary restore roles"
	}
	return ""
}

// CheckName refuses a name whose database name PostgreSQL would truncate,
// in SQL and in the connection's database name alike: the truncated name
// could be another instance's database.
func (Kind) CheckName(c kind.Component, name string) string {
	if db := c.Template.Expand(name); len(db) > MaxDatabaseName {
		return fmt.Sprintf("its database %s (component %s) would be %d bytes; PostgreSQL cuts names at %d bytes, so it could denote another instance's database",
			db, c.Name, len(db), MaxDatabaseName)
	}
	if o := c.OwnerFor(name); len(o) > MaxDatabaseName {
		return fmt.Sprintf("its database's owner %s (component %s) would be %d bytes; PostgreSQL cuts role names at %d bytes, so it could denote another role",
			o, c.Name, len(o), MaxDatabaseName)
	}
	return ""
}

func (Kind) Locate(c kind.Component, name string) (string, error) {
	return c.Template.Expand(name), nil
}

type dbInfo struct {
	size     int64
	allowCon bool
}

type listKey struct{}

// databases lists the server's databases once per scan.
func databases(ctx context.Context, s *kind.Scan) (map[string]dbInfo, error) {
	v, err := s.Cache(listKey{}, func() (any, error) {
		db, err := Conn(s.Env).Open(ctx, "postgres")
		if err != nil {
			return nil, err
		}
		defer db.Close()
		return listDatabases(ctx, db)
	})
	if err != nil {
		return nil, err
	}
	return v.(map[string]dbInfo), nil
}

func listDatabases(ctx context.Context, db *sql.DB) (map[string]dbInfo, error) {
	rows, err := db.QueryContext(ctx,
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
	return dbs, nil
}

func (Kind) Names(ctx context.Context, s *kind.Scan, c kind.Component) ([]string, error) {
	dbs, err := databases(ctx, s)
	if err != nil {
		return nil, err
	}
	return c.Template.MatchAll(maps.Keys(dbs)), nil
}

func (Kind) State(ctx context.Context, s *kind.Scan, c kind.Component, name string) (kind.State, error) {
	st := kind.State{Locator: c.Template.Expand(name)}
	dbs, err := databases(ctx, s)
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

// Preflight refuses a database with open connections.
func (Kind) Preflight(ctx context.Context, env kind.Env, st kind.State) (*kind.Refusal, error) {
	conns, err := settledConnections(ctx, Conn(env), st.Locator)
	if err != nil {
		return nil, err
	}
	if len(conns) > 0 {
		return &kind.Refusal{Reason: fmt.Sprintf("database %s has %d open connection(s): %s", st.Locator, len(conns), strings.Join(conns, "; ")),
			Advice: "stop the application or close those sessions"}, nil
	}
	return nil, nil
}

func (Kind) Placeholder(string) string { return "" }

func databaseExists(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	return n > 0, nil
}
