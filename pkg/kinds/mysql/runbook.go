package mysql

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

func (Kind) RunbookTools() string {
	return "MariaDB's client `mariadb` (Debian's mariadb-client package)"
}

// RunbookStep writes the block that puts a MariaDB component back: the
// dump is loaded into a new database of the component's name, dropped
// again when the load fails.
func (Kind) RunbookStep(b *strings.Builder, s kind.RunbookStep) {
	q, one := kind.ShellQuote, kind.OneLine
	db := s.Locator
	work := filepath.Dir(s.Archive) + "/.fleetsafe-restore-" + s.Tag + "-" + s.Component
	dump := work + "/" + path.Base(s.ArchivePath)
	ident := mariadb.QuoteIdent(db)
	fmt.Fprintf(b, "### %s: MariaDB database `%s`\n\n", one(s.Component), one(db))
	fmt.Fprintf(b, "The commands connect the way the `mariadb` client does by default: as the user "+
		"running them, through the local socket (Debian lets root in so), with the options of "+
		"`~/.my.cnf` if there is one; put another user and its password there if the server wants "+
		"them, with the right to create databases. The dump is first extracted into `%s` "+
		"(beside the archive), then loaded into a new database `%s`, which is dropped again if the "+
		"load fails. The dump keeps each view's, routine's, trigger's and event's DEFINER, so those "+
		"users must exist. Grants on the database are not in the dump: if the application "+
		"connects as its own user, grant it the database again afterwards "+
		"(`GRANT ALL ON %s.* TO <APP_USER>`).\n\n", one(work), one(db), one(ident))
	b.WriteString("```sh\n")
	fmt.Fprintf(b, "found=$(mariadb -N -B -e %s) || found=unknown\n",
		q("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE BINARY SCHEMA_NAME = "+sqlString(db)))
	b.WriteString("if [ \"$found\" != 0 ]; then\n")
	fmt.Fprintf(b, "  printf 'REFUSED: database %%s exists, or MariaDB could not be asked (see above); drop or rename it first, then run this block again\\n' %s >&2\n", q(db))
	b.WriteString("  false\nelse\n")
	fmt.Fprintf(b, "  mkdir -m 0700 %s &&\n", q(work))
	fmt.Fprintf(b, "    %s -xf %s -C %s --strip-components=1 %s &&\n", kind.RunbookTar, q(s.Archive), q(work), q(s.ArchivePath))
	fmt.Fprintf(b, "    mariadb -e %s &&\n", q("CREATE DATABASE "+ident+" CHARACTER SET utf8mb4"))
	fmt.Fprintf(b, "    { mariadb --binary-mode --database=%s < %s ||\n", q(db), q(dump))
	fmt.Fprintf(b, "      { mariadb -e %s; false; }; } &&\n", q("DROP DATABASE "+ident))
	fmt.Fprintf(b, "    rm -r %s\n", q(work))
	b.WriteString("fi\n```\n\n")
}

// sqlString quotes s as an SQL string literal for the mariadb client
// (backslash escapes on, the server's default).
func sqlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`, "\x00", `\0`, "\n", `\n`, "\r", `\r`, "\x1a", `\Z`)
	return "'" + r.Replace(s) + "'"
}
