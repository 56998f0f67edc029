package softdelete

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
)

// archiveDirPlaceholder stands for the archive's directory when Runbook is
// given a bare archive name; RESTORE.md then explains it.
const archiveDirPlaceholder = "<ARCHIVE_DIR>"

// runbookTar is the tar invocation every block uses: zstd through tar, so
// that a failing zstd fails the command (a pipe would hide it). Files are
// extracted with -p, --numeric-owner and every extended attribute the
// archive records (ACLs are the system.posix_acl_* attributes).
const runbookTar = "tar --use-compress-program=zstd"

// Runbook returns RESTORE.md: the exact commands to restore this instance
// by hand with sha256sum, tar, zstd, coreutils and PostgreSQL's client
// tools alone, for the day fleetsafe (or the host that ran it) is not there.
//
// archive is the archive's path. When it is absolute, every command names
// the archive's real directory; a bare name yields an explained
// <ARCHIVE_DIR> placeholder.
//
// Every fenced sh block is meant to be pasted as is into a root bash shell,
// one after the other: each stands alone (no cd, no variables carried
// between blocks), refuses to overwrite a component that is present, and
// ends with a non-zero status, after saying why, when anything fails. A
// component is extracted into a staging directory (or database) beside its
// destination and renamed into place, so that it is either absent or
// complete. No command is printed with an empty argument.
func Runbook(m *Manifest, archive string) []byte {
	name := filepath.Base(archive)
	dir := archiveDirPlaceholder
	if filepath.IsAbs(archive) {
		dir = filepath.Dir(archive)
	}
	archivePath := dir + "/" + name
	tag := runbookTag(m.ID)

	var b strings.Builder
	fmt.Fprintf(&b, "# Restoring %s (%s) by hand\n\n", oneLine(m.Instance), oneLine(m.App))
	fmt.Fprintf(&b, "Archive `%s`, made on %s from host %s by fleetsafe %s.\n", oneLine(name),
		m.CreatedAt.Format("2006-01-02 15:04:05 MST"), oneLine(m.Host), oneLine(m.ToolVersion))
	fmt.Fprintf(&b, "Reason: %s. Requested by: %s. Job: %s.\n\n", oneLine(m.Reason), orDash(oneLine(m.RequestedBy)), orDash(oneLine(m.JobID)))

	b.WriteString("You need bash, coreutils (`mkdir`, `mv`, `rmdir`), `sha256sum`, `tar` and `zstd`")
	if len(m.Databases) > 0 {
		b.WriteString(", and PostgreSQL's client tools `psql`, `createdb` and `pg_restore`")
	}
	b.WriteString(".\nRun the blocks below as root on the host the instance belongs to, in order, " +
		"each pasted whole into a bash shell. Each block stands alone, changes nothing " +
		"outside what it names, and when something is wrong it says so and ends with a " +
		"non-zero status (`echo $?` after it prints a number other than 0): stop there.\n\n")
	if dir == archiveDirPlaceholder {
		fmt.Fprintf(&b, "`%s` below stands for the directory that holds `%s` and `%s%s`, which was not "+
			"known when this file was written: replace it everywhere with that directory's absolute "+
			"path before running anything (it sits inside single quotes: a directory whose name "+
			"holds a single quote must be written `'\\''` there). Left as is, the first block "+
			"fails: stop there.\n\n",
			archiveDirPlaceholder, oneLine(name), oneLine(name), sidecar.Suffix)
	} else {
		fmt.Fprintf(&b, "The blocks read the archive where fleetsafe wrote it, `%s`. "+
			"If you restore from a copy (delete_instance.yml copies it to the controller, "+
			"under `<fetch_dir>/<host>/%s/`), put the copy and its `%s` file in one directory "+
			"and replace `%s` with that directory everywhere below.\n\n",
			oneLine(archivePath), oneLine(m.Instance), sidecar.Suffix, oneLine(dir))
	}

	b.WriteString("## 1. Check the archive\n\n")
	b.WriteString("`sha256sum -c` looks for the file named in the `.sha256` file in its working " +
		"directory, so the block runs it from the archive's directory (in a subshell: your " +
		"shell stays where it is). It must print `" + oneLine(name) + ": OK`.\n\n")
	fmt.Fprintf(&b, "```sh\n(cd %s && sha256sum -c %s)\n```\n\n", shellQuote(dir), shellQuote(name+sidecar.Suffix))
	fmt.Fprintf(&b, "The manifest lists every file with its sha256, mode, owner and mtime: "+
		"`%s -xOf %s manifest.json`.\n\n", runbookTar, oneLine(shellQuote(archivePath)))

	b.WriteString("## 2. Put each component back\n\n")
	b.WriteString("A block refuses, and changes nothing, when its component is present: it is " +
		"never overwritten. If a present component must be replaced, move it aside first and " +
		"run the block again. A block extracts its component into a staging directory (or " +
		"database) beside the destination and renames it into place only when complete; if " +
		"it fails half-way, the staging directory or database it names is all that is left: " +
		"remove it (`rm -r` it, or `dropdb` it) before running the block again. tar writes " +
		"every byte of a sparse file (a VM image, a preallocated database file), so it takes " +
		"its full size on disk after these blocks (fleetsafe's own restore keeps zeros as " +
		"holes); check the free space first, and `fallocate --dig-holes <file>` gives it back.\n\n")
	restorable := 0
	for i, c := range m.Components {
		switch {
		case c.Type == instance.TypeSystemdUnit:
			continue // section 3
		case !c.Present:
			fmt.Fprintf(&b, "### %s\n\nComponent %s (%s) was absent when the instance was deleted: there is nothing to put back.\n\n",
				oneLine(c.Name), oneLine(c.Name), oneLine(c.Type))
			continue
		case c.ArchivePath == "":
			fmt.Fprintf(&b, "### %s\n\nComponent %s (%s, `%s`) is not in this archive: restore it from your backups.\n\n",
				oneLine(c.Name), oneLine(c.Name), oneLine(c.Type), oneLine(c.Locator))
			continue
		}
		restorable++
		switch c.Type {
		case instance.TypeDir, instance.TypeFile:
			writeFileStep(&b, c, archivePath, tag)
		case instance.TypePostgreSQL:
			writeDatabaseStep(&b, c, archivePath, tag, handStagingDatabase(tag, i))
		default:
			fmt.Fprintf(&b, "### %s\n\nComponent %s is of type %s, for which this runbook has no commands: "+
				"it is in the archive under `%s`; put it back at `%s` by hand, or use fleetsafe's instance_restore.\n\n",
				oneLine(c.Name), oneLine(c.Name), oneLine(c.Type), oneLine(c.ArchivePath), oneLine(c.Locator))
		}
	}
	if restorable == 0 {
		b.WriteString("This archive holds no component to put back.\n\n")
	}

	b.WriteString("## 3. Start the instance\n\n")
	units := 0
	for _, c := range m.Components {
		if c.Type != instance.TypeSystemdUnit {
			continue
		}
		units++
		if !c.Present || c.Locator == "" {
			fmt.Fprintf(&b, "Component %s (systemd unit `%s`) was absent when the instance was deleted: there is no unit to start.\n\n",
				oneLine(c.Name), oneLine(c.Locator))
			continue
		}
		fmt.Fprintf(&b, "Component %s is the systemd unit `%s`. Its unit file is not in the archive "+
			"(deletion moved it into quarantine, and purge removed it): if `systemctl cat %s` "+
			"says it does not exist, reinstall it the way it was first installed (package, "+
			"configuration management). Then enable and start it:\n\n",
			oneLine(c.Name), oneLine(c.Locator), oneLine(shellQuote(c.Locator)))
		fmt.Fprintf(&b, "```sh\nsystemctl enable --now %s\n```\n\n", shellQuote(c.Locator))
	}
	if units == 0 {
		b.WriteString("The layout names no systemd unit for this instance: there is no unit step; " +
			"start the application the way it is usually started.\n\n")
	}
	b.WriteString("Then check the application.\n\n")
	b.WriteString("With fleetsafe available, `instance_restore` with `source: archive` does all of this and verifies every checksum first.\n")
	return []byte(b.String())
}

// writeFileStep writes the block that puts a dir or file component back.
func writeFileStep(b *strings.Builder, c ManifestComponent, archivePath, tag string) {
	dest := c.Locator
	parent := filepath.Dir(dest)
	stage := filepath.Join(parent, ".fleetsafe-restore-"+tag+"-"+c.Name)
	member, strip, staged := c.ArchivePath, 1, path.Base(c.ArchivePath)
	kind := "directory"
	if c.Type == instance.TypeFile {
		kind = "file"
		base := filepath.Base(dest)
		member, strip, staged = c.ArchivePath+"/"+base, 2, base
	}
	fmt.Fprintf(b, "### %s: %s `%s`\n\n", oneLine(c.Name), kind, oneLine(dest))
	fmt.Fprintf(b, "Staging directory, if the block fails: `%s`.\n\n", oneLine(stage))
	b.WriteString("```sh\n")
	writeRefusal(b, dest, "move it aside first, then run this block again")
	fmt.Fprintf(b, "  mkdir -p %s &&\n", shellQuote(parent))
	fmt.Fprintf(b, "    mkdir -m 0700 %s &&\n", shellQuote(stage))
	fmt.Fprintf(b, "    %s -xpf %s --numeric-owner --xattrs --xattrs-include='*' -C %s --strip-components=%d %s &&\n",
		runbookTar, shellQuote(archivePath), shellQuote(stage), strip, shellQuote(member))
	fmt.Fprintf(b, "    mv -T %s %s &&\n", shellQuote(stage+"/"+staged), shellQuote(dest))
	fmt.Fprintf(b, "    rmdir %s\n", shellQuote(stage))
	b.WriteString("fi\n```\n\n")
}

// writeDatabaseStep writes the block that puts a PostgreSQL component back.
func writeDatabaseStep(b *strings.Builder, c ManifestComponent, archivePath, tag, stageDB string) {
	db := c.Locator
	work := filepath.Dir(archivePath) + "/.fleetsafe-restore-" + tag + "-" + c.Name
	dump := work + "/" + path.Base(c.ArchivePath)
	fmt.Fprintf(b, "### %s: PostgreSQL database `%s`\n\n", oneLine(c.Name), oneLine(db))
	fmt.Fprintf(b, "The commands connect the way libpq does by default: as the user running them, "+
		"through the local socket. If the server wants another role or host, first set in "+
		"this shell `export PGHOST=<DB_HOST> PGPORT=<DB_PORT> PGUSER=<DB_SUPERUSER>` (and "+
		"`PGPASSWORD`, or a `~/.pgpass` file), with a role allowed to create databases. "+
		"The dump is first extracted into `%s` (beside the archive), restored into the staging "+
		"database `%s`, which is renamed `%s` once complete. pg_restore gives every object "+
		"its archived owner, so those roles must exist. The dump holds the database's "+
		"contents, not its own owner: if the application connects as its own role, give it "+
		"the database afterwards with `ALTER DATABASE %s OWNER TO <APP_ROLE>`.\n\n",
		oneLine(work), oneLine(stageDB), oneLine(db), oneLine(pgdump.QuoteIdent(db)))
	b.WriteString("```sh\n")
	// Every database a client tool connects to is given as a quoted
	// connection string (libpq reads a -d or --dbname value holding '='
	// as one); every name in SQL is a quoted identifier or literal.
	maint := shellQuote(pgdump.DBNameArg("postgres"))
	fmt.Fprintf(b, "found=$(psql -X -A -t -d %s -c %s) || found=unknown\n", maint,
		shellQuote("SELECT count(*) FROM pg_database WHERE datname = "+sqlLiteral(db)))
	fmt.Fprintf(b, "if [ \"$found\" != 0 ]; then\n")
	fmt.Fprintf(b, "  printf 'REFUSED: database %%s exists, or PostgreSQL could not be asked (see above); drop or rename it first, then run this block again\\n' %s >&2\n", shellQuote(db))
	b.WriteString("  false\nelse\n")
	fmt.Fprintf(b, "  mkdir -m 0700 %s &&\n", shellQuote(work))
	fmt.Fprintf(b, "    %s -xf %s -C %s --strip-components=1 %s &&\n", runbookTar, shellQuote(archivePath), shellQuote(work), shellQuote(c.ArchivePath))
	fmt.Fprintf(b, "    createdb --maintenance-db=%s --template=template0 -- %s &&\n", maint, shellQuote(stageDB))
	fmt.Fprintf(b, "    pg_restore --exit-on-error --dbname=%s %s &&\n", shellQuote(pgdump.DBNameArg(stageDB)), shellQuote(dump))
	fmt.Fprintf(b, "    psql -X -q -v ON_ERROR_STOP=1 -d %s -c %s &&\n", maint,
		shellQuote("ALTER DATABASE "+pgdump.QuoteIdent(stageDB)+" RENAME TO "+pgdump.QuoteIdent(db)))
	fmt.Fprintf(b, "    rm -r %s\n", shellQuote(work))
	b.WriteString("fi\n```\n\n")
}

// writeRefusal opens the if/else that refuses when dest exists (a
// dangling symlink counts as existing).
func writeRefusal(b *strings.Builder, dest, advice string) {
	fmt.Fprintf(b, "if [ -e %s ] || [ -L %s ]; then\n", shellQuote(dest), shellQuote(dest))
	fmt.Fprintf(b, "  printf 'REFUSED: %%s exists; %s\\n' %s >&2\n", advice, shellQuote(dest))
	b.WriteString("  false\nelse\n")
}

// runbookTag is the archive ID as it appears in staging names: lower case
// letters, digits and underscores, valid unquoted in SQL too.
func runbookTag(id string) string {
	tag := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, id)
	if tag == "" {
		tag = "archive"
	}
	return tag
}

// handStagingDatabase names the database a by-hand dump is restored into before it is
// renamed into place; at most 63 bytes (PostgreSQL's identifier limit).
func handStagingDatabase(tag string, i int) string {
	suffix := fmt.Sprintf("_%d", i)
	name := "fleetsafe_restore_" + tag
	if len(name)+len(suffix) > 63 {
		name = name[:63-len(suffix)]
	}
	return name + suffix
}

// sqlLiteral quotes s as an SQL string: dollar-quoted when it can be (it
// reads better inside a single-quoted shell word), standard otherwise.
func sqlLiteral(s string) string {
	if !strings.Contains(s, "$") {
		return "$fleetsafe$" + s + "$fleetsafe$"
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// shellQuote quotes s as one bash word: single quotes, or ANSI-C quoting
// ($'...') when s holds control characters, so that a newline in a path
// can never end a Markdown code block or a command.
func shellQuote(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return ansiCQuote(s)
		}
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func ansiCQuote(s string) string {
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString("'")
	return b.String()
}

// oneLine makes free text (a reason, a path shown in prose) safe to print
// in Markdown prose: control characters become spaces and backticks
// quotes, so that it can never open or close a code block.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f:
			return ' '
		case r == '`':
			return '\''
		}
		return r
	}, s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
