// Package mysql is the mysql component kind: a database of a MariaDB (or
// MySQL) server, Nextcloud's common setup. It is archived as a
// mariadb-dump (one consistent snapshot, with routines, triggers and
// events), checked to its closing line; quarantined by moving every table
// into a quarantine database with one RENAME TABLE (MariaDB has no RENAME
// DATABASE), the views, routines, triggers and events kept there beside
// them (pkg/mariadb, DefinitionsTable) so that any move back recreates
// them; compared with its archived dump before it is moved back; restored
// from an archive into a staging database whose tables are moved into
// place. The server is reached as kind.Env.Settings[Type] says (a
// mariadb.Conn), by default as the current user over Debian's socket.
package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"maps"
	"strings"
	"unicode/utf8"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// Type is the layout's type of a MariaDB database component.
const Type = "mysql"

// Kind is the mysql kind.
type Kind struct{}

var (
	_ kind.Kind          = Kind{}
	_ kind.RestoreTester = Kind{}
)

func init() { kind.Register(Kind{}) }

// Conn returns the MariaDB connection settings of env (the zero Conn,
// Debian's socket as the current user, when none are set).
func Conn(env kind.Env) mariadb.Conn {
	c, _ := env.Setting(Type).(mariadb.Conn)
	return c
}

func (Kind) Type() string      { return Type }
func (Kind) Key() string       { return "database" }
func (Kind) Family() string    { return kind.FamilyDatabase }
func (Kind) Noun() string      { return "MariaDB database" }
func (Kind) Shape() kind.Shape { return kind.Dump }
func (Kind) DumpExt() string   { return ".sql" }

// CheckTemplate: the postgresql kind's rules (lowercase letters, digits
// and _ around {name}; a literal prefix of the application's own ending
// with _, outside fleetsafe's reserved prefixes), so that the server's
// own schemas (mysql, sys…) and other applications' databases never fit.
func (Kind) CheckTemplate(raw string) string {
	if strings.Count(raw, kind.Placeholder) != 1 {
		return "must contain {name} exactly once"
	}
	rest := strings.Replace(raw, kind.Placeholder, "", 1)
	for _, r := range rest {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return "characters not allowed in database names (lowercase letters, digits and _)"
		}
	}
	t := kind.NewTemplate(raw)
	switch {
	case t.Prefix == "":
		return "a database template needs a literal prefix of the application's own before {name}, such as nextcloud_{name}: without one, every database of the server that fits name_pattern (mysql, sys…) would be taken for an instance"
	case !strings.HasSuffix(t.Prefix, "_"):
		return fmt.Sprintf("the literal prefix %q must end with '_' (such as %s_{name}), so that it names a namespace of the application's own", t.Prefix, strings.TrimRight(t.Prefix, "_"))
	}
	for _, r := range mariadb.ReservedPrefixes {
		if strings.HasPrefix(t.Prefix, r) {
			return "databases starting with " + r + " are fleetsafe's own (quarantined, being purged, staged for a restore or a restore test); a layout may not claim them"
		}
	}
	return ""
}

// CheckName refuses a name whose database name MariaDB cannot hold: more
// than 64 characters (it refuses longer names rather than cutting them),
// or what mariadb.ValidateName refuses.
func (Kind) CheckName(c kind.Component, name string) string {
	db := c.Template.Expand(name)
	if n := utf8.RuneCountInString(db); n > mariadb.MaxNameLen {
		return fmt.Sprintf("its database %s (component %s) would be %d characters; MariaDB names hold at most %d", db, c.Name, n, mariadb.MaxNameLen)
	}
	if err := mariadb.ValidateName(db); err != nil {
		return fmt.Sprintf("its database (component %s): %v", c.Name, err)
	}
	return ""
}

func (Kind) Locate(c kind.Component, name string) (string, error) {
	return c.Template.Expand(name), nil
}

// dbInfo is one database of the server as one discovery run saw it.
type dbInfo struct {
	size     int64
	incoming string // a stopped restore's source (mariadb.Incoming)
}

type listKey struct{}

// databases lists the server's databases once per scan, with their sizes
// (data and indexes) and in-flight marks.
func databases(ctx context.Context, s *kind.Scan) (map[string]dbInfo, error) {
	v, err := s.Cache(listKey{}, func() (any, error) {
		db, err := Conn(s.Env).Open(ctx, "")
		if err != nil {
			return nil, err
		}
		defer db.Close()
		return listDatabases(ctx, db, s.Sizes)
	})
	if err != nil {
		return nil, err
	}
	return v.(map[string]dbInfo), nil
}

// listDatabases lists the databases that may be instances', with their
// in-flight marks and, when sizes is set, their sizes (which make the
// server open every table's metadata: slow on a server with many).
func listDatabases(ctx context.Context, db *sql.DB, sizes bool) (map[string]dbInfo, error) {
	names, err := mariadb.Databases(ctx, db)
	if err != nil {
		return nil, err
	}
	out := map[string]dbInfo{}
	for _, n := range names {
		out[n] = dbInfo{size: -1}
	}
	q := `SELECT SCHEMA_NAME, COALESCE(SCHEMA_COMMENT, ''), -1 FROM information_schema.SCHEMATA`
	if sizes {
		q = `SELECT s.SCHEMA_NAME, COALESCE(s.SCHEMA_COMMENT, ''), COALESCE(SUM(t.DATA_LENGTH + t.INDEX_LENGTH), 0)
		FROM information_schema.SCHEMATA s LEFT JOIN information_schema.TABLES t ON BINARY t.TABLE_SCHEMA = BINARY s.SCHEMA_NAME
		GROUP BY s.SCHEMA_NAME, s.SCHEMA_COMMENT`
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list database sizes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, comment string
		var size int64
		if err := rows.Scan(&name, &comment, &size); err != nil {
			return nil, fmt.Errorf("list database sizes: %w", err)
		}
		if _, ok := out[name]; ok {
			info := dbInfo{size: size}
			if strings.HasPrefix(comment, mariadb.IncomingPrefix) {
				info.incoming = strings.TrimPrefix(comment, mariadb.IncomingPrefix)
			}
			out[name] = info
		}
	}
	return out, rows.Err()
}

func (Kind) Names(ctx context.Context, s *kind.Scan, c kind.Component) ([]string, error) {
	dbs, err := databases(ctx, s)
	if err != nil {
		return nil, err
	}
	return c.Template.MatchAll(maps.Keys(dbs)), nil
}

// State: present when the database exists; a database a stopped restore
// left half-moved is present with a Problem (instance_restore finishes
// it).
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
	if info.size >= 0 {
		size := info.size
		st.SizeBytes = &size
	}
	if info.incoming != "" {
		st.Problem = fmt.Sprintf("a restore into it from %s stopped half-way: run instance_restore again to finish it", info.incoming)
	}
	return st, nil
}

// Preflight refuses a database with clients connected (named), one whose
// tables other databases' tables reference by foreign key (named), and
// one holding a table named like the one a quarantine keeps its
// definitions in.
func (Kind) Preflight(ctx context.Context, env kind.Env, st kind.State) (*kind.Refusal, error) {
	db, err := Conn(env).Open(ctx, "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	err = mariadb.RefuseIfUsed(ctx, db, st.Locator)
	if iu, ok := err.(*mariadb.InUseError); ok {
		return &kind.Refusal{Reason: iu.Error(), Advice: iu.Hint()}, nil
	}
	if err != nil {
		return nil, err
	}
	err = mariadb.RefuseIfReferenced(ctx, db, st.Locator)
	if fk, ok := err.(*mariadb.ForeignKeyError); ok {
		return &kind.Refusal{Reason: fk.Error(), Advice: fk.Hint()}, nil
	}
	if err != nil {
		return nil, err
	}
	tables, err := mariadb.Tables(ctx, db, st.Locator)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		if t.Name == mariadb.DefinitionsTable {
			return &kind.Refusal{Reason: fmt.Sprintf("database %s holds a table named %s, the name under which fleetsafe keeps a quarantine's views, routines, triggers and events", st.Locator, t.Name),
				Advice: "rename that table, then run again"}, nil
		}
	}
	return nil, nil
}

func (Kind) Placeholder(string) string { return "" }

// Dump writes the database with mariadb-dump (mariadb.DumpArgs). Since
// names what changed afterwards: clients connected, tables or their
// update times, views, routines, triggers or events.
func (Kind) Dump(ctx context.Context, env kind.Env, t kind.Target, file string) (kind.Since, error) {
	c := Conn(env)
	before, err := stamp(ctx, c, t.Locator)
	if err != nil {
		return nil, err
	}
	if err := dumpFile(ctx, c, t.Locator, file); err != nil {
		return nil, err
	}
	return func(ctx context.Context) ([]string, error) {
		db, err := c.Open(ctx, "")
		if err != nil {
			return nil, err
		}
		defer db.Close()
		var out []string
		err = mariadb.RefuseIfUsed(ctx, db, t.Locator)
		if iu, ok := err.(*mariadb.InUseError); ok {
			out = append(out, fmt.Sprintf("%s, opened after it was dumped", iu.Error()))
		} else if err != nil {
			return nil, err
		}
		after, err := stamp(ctx, c, t.Locator)
		if err != nil {
			return nil, err
		}
		if after != before {
			out = append(out, fmt.Sprintf("database %s changed after it was dumped (its tables' update times, or its views, routines, triggers or events)", t.Locator))
		}
		return out, nil
	}, nil
}

// VerifyDump reads a mariadb-dump to its closing line.
func (Kind) VerifyDump(r io.Reader) (kind.DumpSummary, error) {
	sum, err := mariadb.VerifyDump(r)
	if err != nil {
		return kind.DumpSummary{}, err
	}
	return kind.DumpSummary{Entries: len(sum.Tables), DataBlocks: int(sum.Inserts)}, nil
}
