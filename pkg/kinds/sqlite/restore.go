package sqlite

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/paths"
	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// Placeholder: never; a file at the database's place is kept (force
// replaces it).
func (Kind) Placeholder(string) string { return "" }

// Staging is a hidden directory beside the database, as for a file.
func (Kind) Staging(t kind.Target) string { return paths.StagingDir(t) }

// Stage copies the verified archived copy into the staging directory
// under the database's base name, synced and checked again.
func (Kind) Stage(ctx context.Context, _ kind.Env, t kind.Target, dump string) (string, error) {
	top := paths.StagingDir(t)
	if err := os.Mkdir(top, 0o700); err != nil {
		return "", fmt.Errorf("create staging directory %s: %w", top, err)
	}
	fail := func(err error) (string, error) {
		if rerr := paths.RemoveStaging(top); rerr != nil {
			return "", fmt.Errorf("%w (and the staging directory %s could not be removed: %v)", err, top, rerr)
		}
		return "", err
	}
	dst := filepath.Join(top, filepath.Base(t.Locator))
	if err := copyFile(dump, dst, filepath.Dir(t.Locator)); err != nil {
		return fail(err)
	}
	if err := sqlitedb.Check(ctx, dst); err != nil {
		return fail(err)
	}
	return top, nil
}

// RestoredMode is the mode of a database restored from an archive.
const RestoredMode = 0o640

// copyFile copies src to the new file dst, synced, with mode RestoredMode
// and the owner and group of parent, the directory it goes to: the
// archived copy does not record the deleted file's own, and the
// application's user usually owns its data directory (a root-owned 0600
// file would lock the application out).
func copyFile(src, dst, parent string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if fi, err := os.Stat(parent); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if err := out.Chown(int(st.Uid), int(st.Gid)); err != nil {
				out.Close()
				return fmt.Errorf("give %s the owner of %s: %w", dst, parent, err)
			}
		}
	}
	if err := out.Chmod(RestoredMode); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("sync %s: %w", dst, err)
	}
	return out.Close()
}

// PutInPlace renames the staged file into place, never replacing
// anything, and refuses while a -journal or -wal lies at the database's
// name: SQLite would read it into the restored file.
func (Kind) PutInPlace(_ context.Context, _ kind.Env, t kind.Target, staged string) error {
	for _, suf := range sqlitedb.Companions {
		if _, err := os.Lstat(t.Locator + suf); err == nil {
			return fmt.Errorf("put %s in place: %s lies there, left by another database of that name; SQLite would read it into the restored one; move it aside first", t.Locator, t.Locator+suf)
		}
	}
	return paths.RenameStaged(staged, t.Locator)
}

func (Kind) DropStaging(_ context.Context, _ kind.Env, staged string, _ bool) error {
	return paths.RemoveStaging(staged)
}

func (Kind) CleanStaging(_ context.Context, _ kind.Env, t kind.Target) (bool, error) {
	top := paths.StagingDir(t)
	if _, err := os.Lstat(top); err != nil {
		return false, nil
	}
	if err := paths.RemoveStaging(top); err != nil {
		return false, fmt.Errorf("remove staging leftover %s: %w", top, err)
	}
	return true, nil
}

func (Kind) RunbookTools() string { return "" }

// RunbookStep writes the block that puts the archived copy back.
func (Kind) RunbookStep(w *strings.Builder, s kind.RunbookStep) {
	q, one := kind.ShellQuote, kind.OneLine
	dest := s.Locator
	parent := filepath.Dir(dest)
	stage := filepath.Join(parent, paths.StagingPrefix+s.Tag+"-"+s.Component)
	fmt.Fprintf(w, "### %s: SQLite database `%s`\n\n", one(s.Component), one(dest))
	fmt.Fprintf(w, "The archive holds a consistent copy taken through SQLite's backup API: one "+
		"self-contained file. No `-wal` or `-journal` may lie beside the destination (SQLite "+
		"would read it into the restored file). Staging directory, if the block fails: `%s`.\n\n", one(stage))
	w.WriteString("```sh\n")
	fmt.Fprintf(w, "if [ -e %s ] || [ -L %s ] || [ -e %s ] || [ -e %s ]; then\n", q(dest), q(dest), q(dest+"-wal"), q(dest+"-journal"))
	fmt.Fprintf(w, "  printf 'REFUSED: %%s (or its -wal or -journal) exists; move it aside first, then run this block again\\n' %s >&2\n", q(dest))
	w.WriteString("  false\nelse\n")
	fmt.Fprintf(w, "  mkdir -p %s &&\n", q(parent))
	fmt.Fprintf(w, "    mkdir -m 0700 %s &&\n", q(stage))
	fmt.Fprintf(w, "    %s -xf %s -C %s --strip-components=1 %s &&\n", kind.RunbookTar, q(s.Archive), q(stage), q(s.ArchivePath))
	fmt.Fprintf(w, "    mv -T %s %s &&\n", q(stage+"/"+path.Base(s.ArchivePath)), q(dest))
	fmt.Fprintf(w, "    rmdir %s\n", q(stage))
	w.WriteString("fi\n```\n\n")
}
