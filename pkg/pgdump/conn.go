// Package pgdump talks to PostgreSQL for fleetsafe: connection parameters
// shared by lib/pq and the real pg_dump/pg_restore tools, and (for archives
// and backups) a reader of pg_dump's custom format.
package pgdump

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strings"

	"github.com/lib/pq"
)

// DefaultSocketDir is where Debian's PostgreSQL listens.
const DefaultSocketDir = "/var/run/postgresql"

// Conn holds community.postgresql's connection parameters. Empty fields
// fall back to libpq's PG* environment variables, then to libpq's defaults
// (the local socket directory, port 5432, the OS user).
type Conn struct {
	Host       string // login_host
	Port       int    // port
	User       string // login_user
	Password   string // login_password; never printed
	UnixSocket string // login_unix_socket
	SSLMode    string // ssl_mode

	// TenantSearchPath leaves the session the search_path of the database
	// and role it logs in to. Only for the temporary restore role, whose
	// sessions run a dump's content (which sets its own search_path);
	// every other session starts with SafeSearchPath.
	TenantSearchPath bool
}

// Tenant returns c for a session that acts as the database's own
// application would (the temporary restore role running a dump's
// content, a test's fixture): it keeps the database's search_path.
func (c Conn) Tenant() Conn {
	c.TenantSearchPath = true
	return c
}

// SafeSearchPath is the search_path every session the module opens with
// its own role starts with, from the connection's startup parameters
// (which take precedence over ALTER DATABASE and ALTER ROLE settings): a
// tenant's schema never comes first, so an unqualified operator, function
// or type in the module's queries is always the system's, never one a
// tenant defined to run with the module's rights. pg_temp is named last
// so that it is not searched first either.
const SafeSearchPath = "pg_catalog, pg_temp"

// Resolved returns c with every empty field filled from the environment and
// defaults, so that lib/pq and pg_dump connect to the same server as the
// same user.
func (c Conn) Resolved() Conn {
	r := c
	if r.UnixSocket != "" {
		r.Host = r.UnixSocket
	}
	if r.Host == "" {
		r.Host = os.Getenv("PGHOST")
	}
	if r.Host == "" {
		if st, err := os.Stat(DefaultSocketDir); err == nil && st.IsDir() {
			r.Host = DefaultSocketDir
		} else {
			r.Host = "localhost"
		}
	}
	if r.Port == 0 {
		if p := os.Getenv("PGPORT"); p != "" {
			fmt.Sscanf(p, "%d", &r.Port)
		}
		if r.Port == 0 {
			r.Port = 5432
		}
	}
	if r.User == "" {
		r.User = os.Getenv("PGUSER")
	}
	if r.User == "" {
		if u, err := user.Current(); err == nil {
			r.User = u.Username
		}
	}
	if r.Password == "" {
		r.Password = os.Getenv("PGPASSWORD")
	}
	if r.SSLMode == "" {
		r.SSLMode = os.Getenv("PGSSLMODE")
	}
	if r.SSLMode == "" {
		r.SSLMode = "prefer"
	}
	return r
}

// String describes the connection without its password.
func (c Conn) String() string {
	r := c.Resolved()
	return fmt.Sprintf("%s@%s:%d", r.User, r.Host, r.Port)
}

func quoteDSN(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// DSN returns a lib/pq key=value connection string for database.
func (c Conn) DSN(database string) string {
	r := c.Resolved()
	parts := []string{
		"host=" + quoteDSN(r.Host),
		fmt.Sprintf("port=%d", r.Port),
		"user=" + quoteDSN(r.User),
		"dbname=" + quoteDSN(database),
		"sslmode=" + quoteDSN(r.SSLMode),
		"application_name=fleetsafe",
		"connect_timeout=10",
	}
	if !r.TenantSearchPath {
		// lib/pq sends an unknown key as a run-time parameter at startup.
		parts = append(parts, "search_path="+quoteDSN(SafeSearchPath))
	}
	if r.Password != "" {
		parts = append(parts, "password="+quoteDSN(r.Password))
	}
	return strings.Join(parts, " ")
}

// Env returns the environment for pg_dump, pg_restore and psql: the current
// environment with the PG* variables of c. The password travels in
// PGPASSWORD, never on a command line.
func (c Conn) Env() []string {
	r := c.Resolved()
	set := map[string]string{
		"PGHOST": r.Host, "PGPORT": fmt.Sprint(r.Port), "PGUSER": r.User,
		"PGSSLMODE": r.SSLMode, "PGAPPNAME": "fleetsafe", "PGCONNECT_TIMEOUT": "10",
	}
	if r.Password != "" {
		set["PGPASSWORD"] = r.Password
	}
	options := os.Getenv("PGOPTIONS")
	if !r.TenantSearchPath {
		// After any options of the environment, so that it wins.
		options = strings.TrimSpace(options + " -c search_path=" + strings.ReplaceAll(SafeSearchPath, " ", ""))
	}
	if options != "" {
		set["PGOPTIONS"] = options
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, override := set[k]; override || k == "PGPASSWORD" || k == "PGDATABASE" || k == "PGOPTIONS" {
			continue
		}
		env = append(env, kv)
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+set[k])
	}
	return env
}

// Open connects to database and checks the connection.
func (c Conn) Open(ctx context.Context, database string) (*sql.DB, error) {
	connector, err := pq.NewConnector(c.DSN(database))
	if err != nil {
		return nil, fmt.Errorf("postgresql %s: %w", c, err)
	}
	db := sql.OpenDB(connector)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgresql %s database %s: %w", c, database, err)
	}
	return db, nil
}

// QuoteIdent quotes an SQL identifier.
func QuoteIdent(name string) string { return pq.QuoteIdentifier(name) }
