package mariadb

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/childproc"
)

// DumpArgs are the options of every dump fleetsafe takes: one consistent
// snapshot (InnoDB) without locking the tables, with stored routines,
// triggers and events, binary columns in hexadecimal (a dump survives any
// re-encoding), in utf8mb4.
var DumpArgs = []string{"--single-transaction", "--routines", "--triggers", "--events", "--hex-blob", "--default-character-set=utf8mb4"}

// Dump writes a mariadb-dump of database name (without CREATE DATABASE or
// USE, so that it restores into any database) to w.
func Dump(ctx context.Context, c Conn, name string, w io.Writer) error {
	return DumpWith(ctx, c, name, w)
}

// DumpWith is Dump with extra mariadb-dump options after DumpArgs.
func DumpWith(ctx context.Context, c Conn, name string, w io.Writer, extra ...string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	if strings.ContainsAny(name, eventUnsafe) {
		db, err := c.Open(ctx, "")
		if err != nil {
			return err
		}
		var n int
		err = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.EVENTS WHERE BINARY EVENT_SCHEMA = ?", name).Scan(&n)
		db.Close()
		if err != nil {
			return fmt.Errorf("dump: count events of %q: %w", name, err)
		}
		if n > 0 {
			return &NameError{Database: name, Why: "mariadb-dump cannot dump the events of a database whose name holds a quote, a backslash or a line break " +
				"(it fails with \"Unknown database\" when selecting it); rename the database or drop its events"}
		}
	}
	args := append(c.clientArgs(), DumpArgs...)
	args = append(append(args, extra...), "--", name)
	cmd := childproc.Command(ctx, "mariadb-dump", args...)
	cmd.Env = c.env(os.Environ())
	cmd.Stdout = w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := childproc.Run(cmd); err != nil {
		return &ToolError{Tool: "mariadb-dump", Database: name, Err: err, Stderr: strings.TrimSpace(stderr.String())}
	}
	return nil
}

// eventUnsafe are the characters of a database name with which
// mariadb-dump --events fails (10.11: it escapes the name twice when it
// selects the database again for its events).
const eventUnsafe = "'\"\\\n\r\x1a"

// LoadArgs keep the mariadb client from reaching beyond the server: no
// shell or file commands (--sandbox), no LOAD DATA LOCAL reading the
// client's files, stop at the first error.
var LoadArgs = []string{"--batch", "--sandbox", "--local-infile=0", "--binary-mode"}

// Load runs the SQL of r (a mariadb-dump) with the mariadb client into
// database name, which must exist.
func Load(ctx context.Context, c Conn, name string, r io.Reader) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	args := append(c.clientArgs(), LoadArgs...)
	args = append(args, "--database="+name)
	cmd := childproc.Command(ctx, "mariadb", args...)
	cmd.Env = c.env(os.Environ())
	cmd.Stdin = r
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := childproc.Run(cmd); err != nil {
		return &ToolError{Tool: "mariadb", Database: name, Err: err, Stderr: strings.TrimSpace(out.String())}
	}
	return nil
}

// ToolError is mariadb-dump or mariadb failing, with what it said.
type ToolError struct {
	Tool, Database string
	Err            error
	Stderr         string
}

func (e *ToolError) Error() string {
	msg := fmt.Sprintf("%s on database %q: %v", e.Tool, e.Database, e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Unwrap returns the error of the run.
func (e *ToolError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *ToolError) Hint() string {
	return "run the same command by hand to see the whole message; mariadb-dump and mariadb come with Debian's mariadb-client package"
}
