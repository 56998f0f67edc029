package sqlite

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

func (Kind) RunbookTools() string { return "" }

// RunbookStep writes the block that puts a SQLite database back: the
// archived copy is extracted into a staging directory beside its place
// and renamed in; the block refuses when the database or one of its
// companions (-wal, -journal, -shm) is there.
func (Kind) RunbookStep(b *strings.Builder, s kind.RunbookStep) {
	q, one := kind.ShellQuote, kind.OneLine
	dest := s.Locator
	parent := filepath.Dir(dest)
	stage := filepath.Join(parent, ".fleetsafe-restore-"+s.Tag+"-"+s.Component)
	fmt.Fprintf(b, "### %s: SQLite database `%s`\n\n", one(s.Component), one(dest))
	fmt.Fprintf(b, "The archive holds a consistent copy of the database, made through SQLite's backup API "+
		"(no -wal of its own). Staging directory, if the block fails: `%s`. Give the file back to the "+
		"application's user afterwards if it is not root (`chown <APP_USER>: %s`).\n\n", one(stage), one(dest))
	b.WriteString("```sh\n")
	conds := []string{fmt.Sprintf("[ -e %s ] || [ -L %s ]", q(dest), q(dest))}
	for _, c := range Companions {
		conds = append(conds, fmt.Sprintf("[ -e %s ]", q(dest+c)))
	}
	fmt.Fprintf(b, "if %s; then\n", strings.Join(conds, " || "))
	fmt.Fprintf(b, "  printf 'REFUSED: %%s or its -wal, -journal or -shm exists; move them aside first, then run this block again\\n' %s >&2\n", q(dest))
	b.WriteString("  false\nelse\n")
	fmt.Fprintf(b, "  mkdir -p %s &&\n", q(parent))
	fmt.Fprintf(b, "    mkdir -m 0700 %s &&\n", q(stage))
	fmt.Fprintf(b, "    %s -xpf %s --numeric-owner -O %s > %s &&\n", kind.RunbookTar, q(s.Archive), q(s.ArchivePath), q(stage+"/db"))
	fmt.Fprintf(b, "    mv -T %s %s &&\n", q(stage+"/db"), q(dest))
	fmt.Fprintf(b, "    rmdir %s\n", q(stage))
	b.WriteString("fi\n```\n\n")
}
