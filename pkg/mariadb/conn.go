// Package mariadb administers the MariaDB databases of instances: it
// discovers them, names the clients connected to one, dumps one with
// mariadb-dump, quarantines one by moving every table into a quarantine
// schema in one RENAME TABLE, brings it back, purges the quarantine, and
// checks that a mariadb-dump file is complete to its end. It speaks to the
// server through the pure Go driver and runs Debian's mariadb-dump and
// mariadb client programs.
package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os/user"
	"strings"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
)

// DefaultSocket is where Debian's MariaDB listens (scripts/mariadb-up.sh).
const DefaultSocket = "/run/mysqld/mysqld.sock"

// MaxNameLen is the longest database or table name MariaDB accepts, in
// characters.
const MaxNameLen = 64

// Conn says how to reach the server: over its unix socket, as User (by
// default the user running fleetsafe, which Debian's packages let in as
// root by unix-socket authentication), with a password only when set.
type Conn struct {
	Socket   string
	User     string
	Password string
}

func (c Conn) socket() string {
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

func (c Conn) user() string {
	if c.User != "" {
		return c.User
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}

// config is the driver's configuration for database db ("" for none).
func (c Conn) config(db string) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.Net = "unix"
	cfg.Addr = c.socket()
	cfg.User = c.user()
	cfg.Passwd = c.Password
	cfg.DBName = db
	cfg.ConnectionAttributes = "program_name:fleetsafe"
	cfg.Collation = "utf8mb4_general_ci"
	return cfg
}

// Open returns a pool on database db ("" for none), checked by a ping.
func (c Conn) Open(ctx context.Context, db string) (*sql.DB, error) {
	conn, err := mysql.NewConnector(c.config(db))
	if err != nil {
		return nil, fmt.Errorf("mariadb on %s: %w", c.socket(), err)
	}
	pool := sql.OpenDB(conn)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, &UnreachableError{Socket: c.socket(), User: c.user(), Err: err}
	}
	return pool, nil
}

// clientArgs are the connection arguments of mariadb and mariadb-dump;
// --no-defaults keeps option files from changing what they reach.
func (c Conn) clientArgs() []string {
	return []string{"--no-defaults", "--protocol=socket", "--socket=" + c.socket(), "--user=" + c.user()}
}

// env is the environment of a client program: the password, when set,
// never on a command line that ps shows.
func (c Conn) env(base []string) []string {
	if c.Password != "" {
		return append(base, "MYSQL_PWD="+c.Password)
	}
	return base
}

// UnreachableError is a server that could not be reached or refused us.
type UnreachableError struct {
	Socket, User string
	Err          error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot connect to MariaDB on %s as %s: %v", e.Socket, e.User, e.Err)
}

// Unwrap returns the driver's error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *UnreachableError) Hint() string {
	return "start MariaDB (scripts/mariadb-up.sh does) and let this user in, by unix-socket authentication as Debian sets it up for root"
}

// QuoteIdent quotes a database or table name for MariaDB: in backticks,
// each backtick doubled. It is safe for any name ValidateName accepts.
func QuoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// ValidateName rejects what MariaDB cannot name a database or table: an
// empty name, more than MaxNameLen characters, invalid UTF-8, a NUL
// character, or a trailing space. Anything else (backticks, quotes,
// semicolons, newlines, slashes) is quoted by QuoteIdent.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case !utf8.ValidString(name):
		return fmt.Errorf("name %q is not valid UTF-8", name)
	case utf8.RuneCountInString(name) > MaxNameLen:
		return fmt.Errorf("name %q is longer than %d characters", name, MaxNameLen)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("name %q holds a NUL character", name)
	case strings.HasSuffix(name, " "):
		return fmt.Errorf("name %q ends with a space", name)
	}
	return nil
}
