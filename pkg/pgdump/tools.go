package pgdump

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/childproc"
)

// Dump runs the real pg_dump -Fc of database into file.
func Dump(ctx context.Context, c Conn, database, file string) error {
	return run(ctx, c, "pg_dump", "--format=custom", "--no-password", "--file="+file, "--dbname="+DBNameArg(database))
}

// Restore runs the real pg_restore of file into an existing, empty
// database, stopping at the first error.
func Restore(ctx context.Context, c Conn, database, file string) error {
	return run(ctx, c, "pg_restore", "--no-password", "--exit-on-error", "--no-owner", "--dbname="+DBNameArg(database), file)
}

// DBNameArg is the value of a --dbname option that names exactly database.
// Given as is, a name holding "=" or starting with "postgresql://" is
// taken by libpq as a connection string, which can name another database
// (or server); as a quoted connection string it is only ever a name.
func DBNameArg(database string) string {
	return "dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(database) + "'"
}

func run(ctx context.Context, c Conn, tool string, args ...string) error {
	// If fleetsafe is killed, the tool dies with it instead of holding a
	// connection that would make the re-run refuse (pkg/childproc).
	cmd := childproc.Command(ctx, tool, args...)
	cmd.Env = c.Env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := childproc.Run(cmd); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		return fmt.Errorf("%s %s: %w: %s", tool, args[len(args)-1], err, msg)
	}
	return nil
}
