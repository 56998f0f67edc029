package postgresql

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

func (Kind) RunbookTools() string {
	return "PostgreSQL's client tools `psql`, `createdb` and `pg_restore`"
}

// RunbookStep writes the block that puts a PostgreSQL component back.
func (Kind) RunbookStep(b *strings.Builder, s kind.RunbookStep) {
	q, one := kind.ShellQuote, kind.OneLine
	db := s.Locator
	stageDB := handStagingDatabase(s.Tag, s.Index)
	work := filepath.Dir(s.Archive) + "/.fleetsafe-restore-" + s.Tag + "-" + s.Component
	dump := work + "/" + path.Base(s.ArchivePath)
	fmt.Fprintf(b, "### %s: PostgreSQL database `%s`\n\n", one(s.Component), one(db))
	fmt.Fprintf(b, "The commands connect the way libpq does by default: as the user running them, "+
		"through the local socket. If the server wants another role or host, first set in "+
		"this shell `export PGHOST=<DB_HOST> PGPORT=<DB_PORT> PGUSER=<DB_SUPERUSER>` (and "+
		"`PGPASSWORD`, or a `~/.pgpass` file), with a role allowed to create databases. "+
		"The dump is first extracted into `%s` (beside the archive), restored into the staging "+
		"database `%s`, which is renamed `%s` once complete. pg_restore gives every object "+
		"its archived owner, so those roles must exist. The dump holds the database's "+
		"contents, not its own owner: if the application connects as its own role, give it "+
		"the database afterwards with `ALTER DATABASE %s OWNER TO <APP_ROLE>`.\n\n",
		one(work), one(stageDB), one(db), one(pgdump.QuoteIdent(db)))
	b.WriteString("```sh\n")
	// Every database a client tool connects to is given as a quoted
	// connection string (libpq reads a -d or --dbname value holding '='
	// as one); every name in SQL is a quoted identifier or literal.
	maint := q(pgdump.DBNameArg("postgres"))
	fmt.Fprintf(b, "found=$(psql -X -A -t -d %s -c %s) || found=unknown\n", maint,
		q("SELECT count(*) FROM pg_database WHERE datname = "+SQLLiteral(db)))
	fmt.Fprintf(b, "if [ \"$found\" != 0 ]; then\n")
	fmt.Fprintf(b, "  printf 'REFUSED: database %%s exists, or PostgreSQL could not be asked (see above); drop or rename it first, then run this block again\\n' %s >&2\n", q(db))
	b.WriteString("  false\nelse\n")
	fmt.Fprintf(b, "  mkdir -m 0700 %s &&\n", q(work))
	fmt.Fprintf(b, "    %s -xf %s -C %s --strip-components=1 %s &&\n", kind.RunbookTar, q(s.Archive), q(work), q(s.ArchivePath))
	fmt.Fprintf(b, "    createdb --maintenance-db=%s --template=template0 -- %s &&\n", maint, q(stageDB))
	fmt.Fprintf(b, "    pg_restore --exit-on-error --dbname=%s %s &&\n", q(pgdump.DBNameArg(stageDB)), q(dump))
	fmt.Fprintf(b, "    psql -X -q -v ON_ERROR_STOP=1 -d %s -c %s &&\n", maint,
		q("ALTER DATABASE "+pgdump.QuoteIdent(stageDB)+" RENAME TO "+pgdump.QuoteIdent(db)))
	fmt.Fprintf(b, "    rm -r %s\n", q(work))
	b.WriteString("fi\n```\n\n")
}

// handStagingDatabase names the database a by-hand dump is restored into
// before it is renamed into place; at most 63 bytes (PostgreSQL's
// identifier limit).
func handStagingDatabase(tag string, i int) string {
	suffix := fmt.Sprintf("_%d", i)
	name := "fleetsafe_restore_" + tag
	if len(name)+len(suffix) > MaxDatabaseName {
		name = name[:MaxDatabaseName-len(suffix)]
	}
	return name + suffix
}

// SQLLiteral quotes s as an SQL string: dollar-quoted when it can be (it
// reads better inside a single-quoted shell word), standard otherwise.
func SQLLiteral(s string) string {
	if !strings.Contains(s, "$") {
		return "$fleetsafe$" + s + "$fleetsafe$"
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
