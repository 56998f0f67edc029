package postgresql

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// A dump's default privileges (ALTER DEFAULT PRIVILEGES FOR ROLE <owner>
// …) cannot run as the temporary restore role, a member of no role: they
// are taken out of what it runs (pg_restore without the DEFAULT ACL
// entries; a plain dump's lines left out by ownerFilter) and applied by
// the module's role after the hand-over to the owner, each only when it
// is one statement of the strict form pg_dump writes, for the database's
// owner, in a schema of the restored database. Any other is not run, and
// a note names it.

var defACLStatement = func() *regexp.Regexp {
	id := `(?:[a-z_][a-z0-9_$]*|"(?:[^"\x00]|"")+")`
	grantee := `(?:PUBLIC|` + id + `)`
	grantees := grantee + `(?:, ?` + grantee + `)*`
	priv := `(?:SELECT|INSERT|UPDATE|DELETE|TRUNCATE|REFERENCES|TRIGGER|USAGE|EXECUTE|CREATE|MAINTAIN)`
	privs := `(?:ALL(?: PRIVILEGES)?|` + priv + `(?:, ?` + priv + `)*)`
	kinds := `(?:TABLES|SEQUENCES|FUNCTIONS|ROUTINES|TYPES|SCHEMAS)`
	return regexp.MustCompile(`^ALTER DEFAULT PRIVILEGES FOR ROLE (` + id + `)(?: IN SCHEMA (` + id + `))? ` +
		`(?:GRANT ` + privs + ` ON ` + kinds + `  ?TO ` + grantees + `(?: WITH GRANT OPTION)?` +
		`|REVOKE (?:GRANT OPTION FOR )?` + privs + ` ON ` + kinds + `  ?FROM ` + grantees + `);$`)
}()

// unquoteIdent gives the name an identifier of defACLStatement stands for.
func unquoteIdent(s string) string {
	if strings.HasPrefix(s, `"`) {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

// checkDefACL says why stmt may not be run as the module's role in a
// database owned by owner ("" when it may): it must be one statement of
// defACLStatement, for owner, in a schema for which schema(name) is true.
func checkDefACL(stmt, owner string, schema func(string) bool) string {
	m := defACLStatement.FindStringSubmatch(stmt)
	if m == nil {
		return "not a single ALTER DEFAULT PRIVILEGES statement of the form pg_dump writes"
	}
	if r := unquoteIdent(m[1]); r != owner {
		return fmt.Sprintf("for the role %s, not the database's owner %s", r, owner)
	}
	if m[2] != "" && !schema(unquoteIdent(m[2])) {
		return fmt.Sprintf("in the schema %s, which the restored database does not have", unquoteIdent(m[2]))
	}
	return ""
}

// defACLStatements splits the text of default privileges (an archive
// entry's definition, or plain dump lines) into its statements, one a
// line.
func defACLStatements(texts []string) []string {
	var out []string
	for _, t := range texts {
		for _, l := range strings.Split(t, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

// applyDefACL runs, as the module's role (conn, in the restored database
// owned by owner), the statements that pass checkDefACL; a note names
// each left out. A statement that passes and fails fails the restore.
func applyDefACL(ctx context.Context, conn *sql.DB, owner string, stmts []string, notes func(string)) error {
	if len(stmts) == 0 {
		return nil
	}
	schemas := map[string]bool{}
	rows, err := conn.QueryContext(ctx, "SELECT nspname FROM pg_namespace")
	if err != nil {
		return fmt.Errorf("list the schemas of the restored database: %w", err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		schemas[n] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, s := range stmts {
		if why := checkDefACL(s, owner, func(n string) bool { return schemas[n] }); why != "" {
			notes(fmt.Sprintf("the dump's default privileges statement %.300q was not applied: %s", s, why))
			continue
		}
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("apply the dump's default privileges %.300q for %s: %w", s, pgdump.QuoteIdent(owner), err)
		}
	}
	return nil
}

// readDatabaseEntries reads the table of contents of the archive file.
func readDatabaseEntries(file string) (*pgdump.DatabaseEntries, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	e, err := pgdump.ReadDatabaseEntries(f)
	if err != nil {
		return nil, fmt.Errorf("read the table of contents of %s: %w", file, err)
	}
	return e, nil
}
