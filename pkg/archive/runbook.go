package archive

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
)

// archiveDirPlaceholder stands for the archive's directory when Runbook is
// given a bare archive name; RESTORE.md then explains it.
const archiveDirPlaceholder = "<ARCHIVE_DIR>"

// runbookTar is the tar invocation every block uses (kind.RunbookTar).
const runbookTar = kind.RunbookTar

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
func Runbook(m *Manifest, archive string) []byte { return runbook(m, archive, nil) }

// runbook writes RESTORE.md; with fetch, the archive lives in object
// storage and a first block copies it to archive's directory.
func runbook(m *Manifest, archive string, fetch *storeFetch) []byte {
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
	for _, tools := range runbookTools(m) {
		b.WriteString(", and " + tools)
	}
	b.WriteString(".\nRun the blocks below as root on the host the instance belongs to, in order, " +
		"each pasted whole into a bash shell. Each block stands alone, changes nothing " +
		"outside what it names, and when something is wrong it says so and ends with a " +
		"non-zero status (`echo $?` after it prints a number other than 0): stop there.\n\n")
	switch {
	case fetch != nil:
		fetch.write(&b, archivePath, tag)
	case dir == archiveDirPlaceholder:
		fmt.Fprintf(&b, "`%s` below stands for the directory that holds `%s` and `%s%s`, which was not "+
			"known when this file was written: replace it everywhere with that directory's absolute "+
			"path before running anything (it sits inside single quotes: a directory whose name "+
			"holds a single quote must be written `'\\''` there). Left as is, the first block "+
			"fails: stop there.\n\n",
			archiveDirPlaceholder, oneLine(name), oneLine(name), sidecar.Suffix)
	default:
		fmt.Fprintf(&b, "The blocks read the archive where fleetsafe wrote it, `%s`. "+
			"If you restore from a copy (delete_instance.yml copies it to the controller, "+
			"under `<fetch_dir>/<host>/%s/`), put the copy and its `%s` file in one directory "+
			"and replace `%s` with that directory everywhere below.\n\n",
			oneLine(archivePath), oneLine(m.Instance), sidecar.Suffix, oneLine(dir))
	}

	b.WriteString("## 1. Check the archive\n\n")
	if fetch != nil && fetch.encrypted {
		fetch.writeCheck(&b, archivePath)
	} else {
		b.WriteString("`sha256sum -c` looks for the file named in the `.sha256` file in its working " +
			"directory, so the block runs it from the archive's directory (in a subshell: your " +
			"shell stays where it is). It must print `" + oneLine(name) + ": OK`.\n\n")
		fmt.Fprintf(&b, "```sh\n(cd %s && sha256sum -c %s)\n```\n\n", shellQuote(dir), shellQuote(name+sidecar.Suffix))
	}
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
		k, known := kind.Lookup(c.Type)
		switch {
		case known && k.Shape() == kind.None:
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
		if !known {
			fmt.Fprintf(&b, "### %s\n\nComponent %s is of type %s, for which this runbook has no commands: "+
				"it is in the archive under `%s`; put it back at `%s` by hand, or use fleetsafe's instance_restore.\n\n",
				oneLine(c.Name), oneLine(c.Name), oneLine(c.Type), oneLine(c.ArchivePath), oneLine(c.Locator))
			continue
		}
		k.RunbookStep(&b, runbookStep(c, archivePath, tag, i))
	}
	if restorable == 0 {
		b.WriteString("This archive holds no component to put back.\n\n")
	}

	b.WriteString("## 3. Start the instance\n\n")
	units := 0
	for i, c := range m.Components {
		if k, known := kind.Lookup(c.Type); known && k.Shape() == kind.None {
			units++
			k.RunbookStep(&b, runbookStep(c, archivePath, tag, i))
		}
	}
	if units == 0 {
		b.WriteString("The layout names no systemd unit for this instance: there is no unit step; " +
			"start the application the way it is usually started.\n\n")
	}
	b.WriteString("Then check the application.\n\n")
	b.WriteString("With fleetsafe available, `instance_restore` with `source: archive` does all of this and verifies every checksum first.\n")
	return []byte(b.String())
}

// runbookStep describes one manifest component to its kind's RESTORE.md
// step.
func runbookStep(c ManifestComponent, archivePath, tag string, i int) kind.RunbookStep {
	return kind.RunbookStep{Component: c.Name, Type: c.Type, Locator: c.Locator, ArchivePath: c.ArchivePath,
		Present: c.Present, Archive: archivePath, Tag: tag, Index: i}
}

// runbookTools lists, once each, the client tools the dumps of the archive
// need (Kind.RunbookTools).
func runbookTools(m *Manifest) []string {
	var out []string
	for _, d := range m.Databases {
		for _, c := range m.Components {
			if c.Name != d.Component {
				continue
			}
			if k, ok := kind.Lookup(c.Type); ok {
				if t := k.RunbookTools(); t != "" && !slices.Contains(out, t) {
					out = append(out, t)
				}
			}
		}
	}
	return out
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

// shellQuote quotes s as one bash word (kind.ShellQuote).
func shellQuote(s string) string { return kind.ShellQuote(s) }

// oneLine makes free text safe to print in Markdown prose (kind.OneLine).
func oneLine(s string) string { return kind.OneLine(s) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
