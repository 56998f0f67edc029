package postgresql

import (
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// TestDefACLCheck attacks "only a dump's own default privileges run as
// the module's role": each hostile variant of pg_dump's statement (a
// second statement, a function call, another role, comments, dollar
// quotes, a missing schema) is refused; pg_dump's forms pass.
func TestDefACLCheck(t *testing.T) {
	schema := func(n string) bool { return n == "public" || n == "App Data" }
	ok := []string{
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme IN SCHEMA public GRANT SELECT ON TABLES  TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT,INSERT,UPDATE ON TABLES TO acme_ro, "Acme RW" WITH GRANT OPTION;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme REVOKE ALL ON FUNCTIONS  FROM PUBLIC;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme IN SCHEMA "App Data" REVOKE GRANT OPTION FOR USAGE ON SEQUENCES  FROM acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT ALL PRIVILEGES ON SCHEMAS TO "x"";DROP TABLE t;--";`,
	}
	for _, s := range ok {
		if why := checkDefACL(s, "acme", schema); why != "" {
			t.Errorf("pg_dump's statement refused: %s: %s", s, why)
		}
	}
	bad := []string{
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro; DROP DATABASE postgres;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro;DROP DATABASE postgres;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro; SELECT pg_read_file('/etc/shadow');`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO pg_read_file('/etc/shadow');`,
		`SELECT 1; ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT SELECT ON TABLES TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE "postgres" GRANT SELECT ON TABLES TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme, postgres GRANT SELECT ON TABLES TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro; -- trailing`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro /* c */;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE /* */ acme GRANT SELECT ON TABLES TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro;--` + "\n" + `DROP TABLE t;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro;` + "\n" + `DROP TABLE t;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO $$x$$;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro; DO $$BEGIN PERFORM 1; END$$;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE $a$acme$a$ GRANT SELECT ON TABLES TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme IN SCHEMA pg_catalog2 GRANT SELECT ON TABLES TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme IN SCHEMA "public"";DROP" GRANT SELECT ON TABLES TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO "acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON LARGE OBJECTS TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro GRANTED BY postgres;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO GROUP acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE Acme GRANT SELECT ON TABLES TO acme_ro;`,
		`alter default privileges for role acme grant select on tables to acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro;;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro;` + "\x00",
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme REVOKE SELECT ON TABLES TO acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES FROM acme_ro;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro WITH ADMIN OPTION;`,
		`ALTER DEFAULT PRIVILEGES FOR ROLE acme GRANT SELECT ON TABLES TO acme_ro; ALTER ROLE acme SUPERUSER;`,
	}
	for _, s := range bad {
		if why := checkDefACL(s, "acme", schema); why == "" {
			t.Errorf("hostile statement passes: %q", s)
		}
	}
}

// TestDefACLCheckProperty: any pg_dump-quoted owner, schema and grantee
// pass for that owner only, and nothing may follow the statement.
func TestDefACLCheckProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		owner := rapid.StringN(1, 20, -1).Filter(func(s string) bool { return !strings.ContainsRune(s, 0) }).Draw(t, "owner")
		other := rapid.StringN(1, 20, -1).Filter(func(s string) bool { return !strings.ContainsRune(s, 0) && s != owner }).Draw(t, "other")
		schema := rapid.StringN(1, 20, -1).Filter(func(s string) bool { return !strings.ContainsRune(s, 0) }).Draw(t, "schema")
		grantee := rapid.StringN(1, 20, -1).Filter(func(s string) bool { return !strings.ContainsRune(s, 0) }).Draw(t, "grantee")
		tail := rapid.StringN(1, 40, -1).Draw(t, "tail")
		has := func(n string) bool { return n == schema }
		stmt := func(role string) string {
			return "ALTER DEFAULT PRIVILEGES FOR ROLE " + pgdump.FmtID(role) + " IN SCHEMA " + pgdump.FmtID(schema) + " GRANT SELECT ON TABLES  TO " + pgdump.FmtID(grantee) + ";"
		}
		if why := checkDefACL(stmt(owner), owner, has); why != "" {
			t.Fatalf("refused %q: %s", stmt(owner), why)
		}
		if why := checkDefACL(stmt(other), owner, has); why == "" {
			t.Fatalf("passes for another role: %q", stmt(other))
		}
		if s := stmt(owner) + tail; checkDefACL(s, owner, has) == "" {
			t.Fatalf("passes with something after it: %q", s)
		}
	})
}
