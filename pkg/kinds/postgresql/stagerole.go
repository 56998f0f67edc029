package postgresql

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// How a restore runs a dump (Stage, StagePlain, and the scratch restore
// of TestRestore alike):
//
//  1. a temporary unprivileged role is made (restorerole.go);
//  2. the staging database is created owned by it;
//  3. the dump's content runs in the role's own session (pg_restore
//     --no-owner, or psql with the plain dump's "ALTER … OWNER TO …"
//     lines left out, since the role is a member of no role);
//  4. the database-level entries of a custom archive (ACL such as REVOKE
//     CONNECT … FROM PUBLIC, ALTER DATABASE … SET, comment), which
//     pg_restore prints only with --create, are applied to the staging
//     database, in the role's session too (they are the archive's text);
//  5. the module's role hands the database and every object the role made
//     in it to the owner the dump names (REASSIGN OWNED, run in the
//     staging database only): a custom archive's DATABASE entry; for a
//     plain dump, the one role its OWNER TO lines name, else the module's
//     role, with a note saying the owner could not be told;
//  6. the dump's default privileges (ALTER DEFAULT PRIVILEGES FOR ROLE
//     <owner> …), which the role may not run and which were left out of
//     step 3, are applied by the module's role, each checked first
//     (defacl.go);
//  7. the role is dropped; the staging database is renamed into place
//     later by PutInPlace, as before (a restore is complete or absent).
//
// The owner the dump names must exist (else the restore is refused,
// naming it). When it is a superuser, or can reach beyond its own
// databases (CREATEROLE, pg_*_server_files, pg_execute_server_program,
// pg_read_all_data, pg_write_all_data, or a member of such a role), the
// content still ran unprivileged, but code it defines would later run
// with the owner's rights (SECURITY DEFINER, index expressions under
// ANALYZE, REFRESH MATERIALIZED VIEW, a view's or rule's table access,
// checked against its owner): such a restore is refused when the dump
// defines functions, procedures, views, materialized views or rules of its
// own (outside extensions), naming them; a dump of tables and data is
// handed to that owner.
//
// When the layout gives the component an owner (kind.Component.Owner),
// that role must exist and not be privileged as above, and the owner the
// dump names must be it (a custom archive's DATABASE entry, checked before
// anything runs; a plain dump's one owner, checked before the hand-over):
// else the backup is refused, naming both. A dump naming no owner is
// given to it. Without one, the dump's owner is taken, and a note says so.
// Per-object owners other than the database's owner are not kept: every
// object belongs to the database's owner (a note names the others).

// dumpOwners is what a dump says about owners.
type dumpOwners struct {
	// database is the owner of the database ("" when the dump does not
	// say: a plain dump with no or several object owners).
	database string
	// objects are the other owners the dump names for its objects.
	objects []string
}

// ownerOf picks the database's owner from the owners a plain dump (or an
// archive without DATABASE entry) names for its objects.
func ownerOf(objects []string) dumpOwners {
	var named []string
	for _, o := range objects {
		if o != "pg_database_owner" && o != "" {
			named = append(named, o)
		}
	}
	if len(named) == 1 {
		return dumpOwners{database: named[0]}
	}
	return dumpOwners{objects: named}
}

// unprivilegedRun is one dump's content and what the dump says of its
// database.
type unprivilegedRun struct {
	// content runs the dump into db as the role (rc).
	content func(ctx context.Context, rc pgdump.Conn, db string) error
	// entries are a custom archive's database-level entries (nil: none).
	entries *pgdump.DatabaseEntries
	// owners says who owns what, once content has run.
	owners func() dumpOwners
	// keepOwnership hands the database to the dump's owner (a staging
	// database); without it the database stays the module's (a scratch
	// database dropped afterwards).
	keepOwnership bool
	// defACL are the dump's default privileges statements, left out of
	// content (the role may not run them), once content has run; applied
	// checked after the hand-over (defacl.go). nil: none.
	defACL func() []string
	// owner is the layout's owner of the database ("" when the layout
	// sets none): the dump must name it (or none), else it is refused.
	owner string
}

// runUnprivileged creates database db (by create, given the role to own
// it) and runs u in it as a temporary unprivileged role (named after tag,
// see RestoreRolePrefixFor), dropped before
// it returns. On error, db may exist and hold a part: the caller drops it.
func runUnprivileged(ctx context.Context, pg pgdump.Conn, db, tag string, create func(ctx context.Context, owner string) error, u unprivilegedRun, notes func(string)) (err error) {
	role, err := newRestoreRole(ctx, pg, tag, notes)
	if err != nil {
		return err
	}
	defer func() {
		if derr := role.drop(pg); derr != nil {
			if err == nil {
				err = derr
			} else {
				err = fmt.Errorf("%w; %v", err, derr)
			}
		}
	}()
	if u.keepOwnership && u.owner != "" {
		// The layout's owner: it must exist and reach no further than
		// its own databases, whatever the dump holds.
		risk, err := ownerRisk(ctx, role.admin, u.owner)
		if err != nil {
			var oe *OwnerError
			if errors.As(err, &oe) {
				return &LayoutOwnerError{Role: u.owner, Why: oe.Why}
			}
			return err
		}
		if risk != "" {
			return &LayoutOwnerError{Role: u.owner, Why: risk}
		}
	}
	if u.entries != nil && u.entries.Owner != "" && u.keepOwnership {
		// Refused before anything is created.
		if u.owner != "" && u.entries.Owner != u.owner {
			return &OwnerMismatchError{Dump: u.entries.Owner, Layout: u.owner}
		}
		if _, err := ownerRisk(ctx, role.admin, u.entries.Owner); err != nil {
			return err
		}
	}
	if err := create(ctx, role.name); err != nil {
		return err
	}
	rc, err := role.login(ctx, pg, db)
	if err != nil {
		return err
	}
	if err := u.content(ctx, rc, db); err != nil {
		return err
	}
	if u.entries != nil {
		if err := applyDatabaseEntries(ctx, rc, db, u.entries); err != nil {
			return err
		}
	}
	// No session of the role may outlive the content: a process it left
	// (it cannot, pg_restore and psql have ended) would act after the
	// hand-over.
	if _, err := role.admin.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role.name); err != nil {
		return fmt.Errorf("end the sessions of the temporary restore role: %w", err)
	}
	if !u.keepOwnership {
		// A scratch database: the module's role takes it back (it counts
		// rows, then drops it); what the role made is kept for the count.
		conn, err := pg.Open(ctx, db)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "REASSIGN OWNED BY "+pgdump.QuoteIdent(role.name)+" TO CURRENT_USER"); err != nil {
			return fmt.Errorf("take back the scratch database %s: %w", db, err)
		}
		return nil
	}
	return handOver(ctx, pg, role, db, u, notes)
}

// handOver gives the database and what the role made in it to the dump's
// owner.
func handOver(ctx context.Context, pg pgdump.Conn, role *restoreRole, db string, u unprivilegedRun, notes func(string)) error {
	var own dumpOwners
	if u.entries != nil && u.entries.Owner != "" {
		own = dumpOwners{database: u.entries.Owner, objects: u.entries.ObjectOwners}
	} else {
		own = u.owners()
	}
	conn, err := pg.Open(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close()
	owner := own.database
	switch {
	case u.owner != "" && owner != "" && owner != u.owner:
		return &OwnerMismatchError{Dump: owner, Layout: u.owner}
	case u.owner != "" && owner == "":
		owner = u.owner
		if len(own.objects) == 0 {
			notes(fmt.Sprintf("the dump names no owner for the database or its objects: they belong to %s, the layout's owner", owner))
		} else {
			notes(fmt.Sprintf("the dump names several owners (%s) and none for the database: the database and its objects belong to %s, the layout's owner", strings.Join(own.objects, ", "), owner))
		}
	}
	unpinned := u.owner == "" && owner != ""
	if owner == "" {
		if err := conn.QueryRowContext(ctx, "SELECT current_user").Scan(&owner); err != nil {
			return err
		}
		if len(own.objects) == 0 {
			notes(fmt.Sprintf("the dump names no owner for the database or its objects: they belong to %s, the module's role; give them to the application's role if it owned them", owner))
		} else {
			notes(fmt.Sprintf("the dump names several owners (%s) and none for the database: the database and its objects belong to %s, the module's role; give them back to their owners", strings.Join(own.objects, ", "), owner))
		}
	} else {
		var others []string
		for _, o := range own.objects {
			if o != owner && o != "pg_database_owner" {
				others = append(others, o)
			}
		}
		if len(others) > 0 {
			notes(fmt.Sprintf("the dump names other owners (%s) for some objects: every object now belongs to the database's owner %s", strings.Join(others, ", "), owner))
		}
	}
	risk, err := ownerRisk(ctx, role.admin, owner)
	if err != nil {
		return err
	}
	if risk != "" {
		code, err := actingOwnedBy(ctx, conn, role.name)
		if err != nil {
			return err
		}
		if len(code) > 0 {
			return &OwnerError{Role: owner, Why: risk, Code: code}
		}
	}
	if _, err := conn.ExecContext(ctx, "REASSIGN OWNED BY "+pgdump.QuoteIdent(role.name)+" TO "+pgdump.QuoteIdent(owner)); err != nil {
		return fmt.Errorf("give the restored database %s to its owner %s: %w", db, owner, err)
	}
	if unpinned {
		notes(fmt.Sprintf("the restored database was given to %s, the owner the dump names; the layout sets no owner for this component: a layout key owner pins the role the database must belong to, and a backup naming another is then refused", owner))
	}
	if _, err := conn.ExecContext(ctx, "DROP OWNED BY "+pgdump.QuoteIdent(role.name)); err != nil {
		return fmt.Errorf("remove the temporary restore role's privileges from %s: %w", db, err)
	}
	var defACL []string
	if u.defACL != nil {
		defACL = defACLStatements(u.defACL())
	}
	if len(defACL) > 0 && own.database == "" {
		notes(fmt.Sprintf("the dump's %d default privileges statements (ALTER DEFAULT PRIVILEGES) were not applied, since the database's owner is not known: apply them for its owner once it has one", len(defACL)))
		return nil
	}
	return applyDefACL(ctx, conn, owner, defACL, notes)
}

// OwnerMismatchError is a dump that names another owner than the layout's.
type OwnerMismatchError struct {
	Dump, Layout string
}

func (e *OwnerMismatchError) Error() string {
	return fmt.Sprintf("the dump gives its database to the role %s, but the layout says it belongs to %s: the backup was refused (nothing was put in place)", e.Dump, e.Layout)
}

// Hint tells the operator what to do.
func (e *OwnerMismatchError) Hint() string {
	return "a backup of another database, or a forged one: restore an older backup, or, if the owner did change, set the layout's owner to it"
}

// LayoutOwnerError is a layout owner that does not exist or reaches
// beyond its own databases: no backup can be restored to it, so it is a
// fault of the place, not of the backup.
type LayoutOwnerError struct {
	Role, Why string
}

func (e *LayoutOwnerError) Error() string {
	return fmt.Sprintf("the layout's owner %s %s: no backup is restored to it (nothing was put in place)", e.Role, e.Why)
}

// Hint tells the operator what to do.
func (e *LayoutOwnerError) Hint() string {
	return "create the layout's owner as an unprivileged role (CREATE ROLE … NOLOGIN NOSUPERUSER NOCREATEROLE, a member of no pg_* role), or fix the layout's owner key"
}

// PlaceFault says that the failure is the place's: older backups would
// fail alike.
func (e *LayoutOwnerError) PlaceFault() bool { return true }

// OwnerError is a restore refused because of the owner its dump names.
type OwnerError struct {
	Role string
	Why  string
	Code []string // functions, views and rules the dump defines, when that is the reason
}

func (e *OwnerError) Error() string {
	if len(e.Code) > 0 {
		return fmt.Sprintf("the dump gives its database to %s, which %s, and defines functions, views or rules of its own (%s): owned by %s they would later run with its rights (SECURITY DEFINER, index expressions, a view's or rule's table access), so the restore was refused (nothing was put in place)",
			e.Role, e.Why, strings.Join(e.Code, ", "), e.Role)
	}
	return fmt.Sprintf("the dump gives its database to the role %s, which %s: the restore was refused (nothing was put in place)", e.Role, e.Why)
}

// Hint tells the operator what to do.
func (e *OwnerError) Hint() string {
	if len(e.Code) > 0 {
		return "give the application's database to an unprivileged role (ALTER DATABASE … OWNER TO, REASSIGN OWNED) so that its backups name it; or restore this dump by hand after reading its functions"
	}
	return "create the role the dump names (CREATE ROLE … NOLOGIN) or restore the dump by hand"
}

// dangerousRoles are the predefined roles that reach beyond one database.
var dangerousRoles = []string{"pg_read_server_files", "pg_write_server_files", "pg_execute_server_program", "pg_read_all_data", "pg_write_all_data"}

// ownerRisk says why owner can reach beyond its own databases ("" when
// it cannot); a missing owner is an OwnerError.
func ownerRisk(ctx context.Context, admin *sql.DB, owner string) (string, error) {
	var exists bool
	if err := admin.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", owner).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up the role %s the dump names as owner: %w", owner, err)
	}
	if !exists {
		return "", &OwnerError{Role: owner, Why: "does not exist on this server"}
	}
	rows, err := admin.QueryContext(ctx, `SELECT r.rolname, r.rolsuper, r.rolcreaterole FROM pg_roles r
		WHERE pg_has_role($1, r.oid, 'MEMBER') AND (r.rolsuper OR r.rolcreaterole OR r.rolname = ANY($2)) ORDER BY r.rolname`, owner, "{"+strings.Join(dangerousRoles, ",")+"}")
	if err != nil {
		return "", fmt.Errorf("look up the rights of the role %s: %w", owner, err)
	}
	defer rows.Close()
	var why []string
	for rows.Next() {
		var n string
		var super, createrole bool
		if err := rows.Scan(&n, &super, &createrole); err != nil {
			return "", err
		}
		w := "is"
		if n != owner {
			w = "is a member of " + n + ", which is"
		}
		switch {
		case super:
			why = append(why, w+" a superuser")
		case createrole:
			why = append(why, w+" allowed CREATEROLE")
		default:
			why = append(why, "is a member of "+n)
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return strings.Join(why, " and "), nil
}

// actingOwnedBy lists (up to 5 of each) the functions, views,
// materialized views and rules role made in the database of conn, outside
// extensions: each acts later with its owner's rights (a view's and a
// rule's table access is checked against the owner).
func actingOwnedBy(ctx context.Context, conn *sql.DB, role string) ([]string, error) {
	code, err := codeOwnedBy(ctx, conn, role)
	if err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, `(SELECT CASE c.relkind WHEN 'v' THEN 'view ' ELSE 'materialized view ' END || c.oid::regclass::text FROM pg_class c
		JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = $1 AND c.relkind IN ('v', 'm')
		AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 1 LIMIT 5)
		UNION ALL
		(SELECT 'rule ' || w.rulename || ' on ' || c.oid::regclass::text FROM pg_rewrite w JOIN pg_class c ON c.oid = w.ev_class
		JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = $1 AND w.rulename <> '_RETURN'
		AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 1 LIMIT 5)`, role)
	if err != nil {
		return nil, fmt.Errorf("list the views and rules of the restored database: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		code = append(code, s)
	}
	return code, rows.Err()
}

// codeOwnedBy lists (up to 5) functions and procedures role owns in the
// database of conn, outside extensions.
func codeOwnedBy(ctx context.Context, conn *sql.DB, role string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
		WHERE r.rolname = $1 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
		ORDER BY 1 LIMIT 5`, role)
	if err != nil {
		return nil, fmt.Errorf("list the functions of the restored database: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// applyDatabaseEntries runs the archive's database-level entries against
// db, in the role's session, naming db instead of the database dumped.
func applyDatabaseEntries(ctx context.Context, rc pgdump.Conn, db string, e *pgdump.DatabaseEntries) error {
	if len(e.SQL) == 0 {
		return nil
	}
	conn, err := rc.Open(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close()
	from := "DATABASE " + pgdump.FmtID(e.Name)
	to := "DATABASE " + pgdump.QuoteIdent(db)
	for _, s := range e.SQL {
		q := s.SQL
		for _, end := range []string{" ", ";", "\n"} {
			q = strings.ReplaceAll(q, from+end, to+end)
		}
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("apply the archive's %s entry of database %s to the staging database %s (as the unprivileged restore role): %w: %.200q", s.Desc, e.Name, db, err, strings.TrimSpace(s.SQL))
		}
	}
	return nil
}

// ownerLines are pg_dump's plain "ALTER <kind> <name> OWNER TO <role>;"
// lines, each on a line of its own.
var (
	ownerLine = regexp.MustCompile(`^ALTER [A-Z][A-Z ]* .+ OWNER TO ("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*);\r?\n?$`)
	copyStart = regexp.MustCompile(`^COPY .+ FROM stdin;\r?\n?$`)
	// defACLLine is a plain dump's default privileges line, left out and
	// applied after the hand-over (defacl.go), checked.
	defACLLine = regexp.MustCompile(`^ALTER DEFAULT PRIVILEGES `)
)

// ownerFilter passes a plain dump on without its OWNER TO lines and its
// ALTER DEFAULT PRIVILEGES lines (kept in defACL; the role
// running it is a member of no role, as pg_restore --no-owner does for a
// custom archive) and records the owners they name. COPY data is passed
// untouched. A hostile dump that hides such a line from the filter only
// makes the restore fail (the role may not give objects away).
type ownerFilter struct {
	br     *bufio.Reader
	pend   string
	inData bool
	owners map[string]bool
	defACL []string
}

func newOwnerFilter(r io.Reader) *ownerFilter {
	return &ownerFilter{br: bufio.NewReaderSize(r, 1<<16), owners: map[string]bool{}}
}

func (f *ownerFilter) Read(p []byte) (int, error) {
	for f.pend == "" {
		line, err := f.br.ReadString('\n')
		if line == "" {
			if err == nil {
				err = io.EOF
			}
			return 0, err
		}
		switch {
		case f.inData:
			if strings.TrimRight(line, "\r\n") == `\.` {
				f.inData = false
			}
		case ownerLine.MatchString(line):
			o := ownerLine.FindStringSubmatch(line)[1]
			if strings.HasPrefix(o, `"`) {
				o = strings.ReplaceAll(o[1:len(o)-1], `""`, `"`)
			}
			f.owners[o] = true
			line = "\n" // keeps psql's line numbers
		case defACLLine.MatchString(line):
			f.defACL = append(f.defACL, strings.TrimRight(line, "\r\n"))
			line = "\n"
		case copyStart.MatchString(line):
			f.inData = true
		}
		f.pend = line
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
	}
	n := copy(p, f.pend)
	f.pend = f.pend[n:]
	return n, nil
}

// named returns the owners seen.
func (f *ownerFilter) named() []string {
	out := make([]string, 0, len(f.owners))
	for o := range f.owners {
		out = append(out, o)
	}
	sort.Strings(out)
	return out
}
