package softdelete

import (
	"fmt"
	"path/filepath"
	"strings"
)

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Runbook returns RESTORE.md: the exact commands to restore this instance
// by hand with tar, zstd and pg_restore alone, for the day fleetsafe (or
// the host that ran it) is not there.
func Runbook(m *Manifest, archiveName string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Restoring %s (%s) by hand\n\n", m.Instance, m.App)
	fmt.Fprintf(&b, "Archive `%s`, made on %s from host %s by fleetsafe %s.\n", archiveName, m.CreatedAt.Format("2006-01-02 15:04:05 MST"), m.Host, m.ToolVersion)
	fmt.Fprintf(&b, "Reason: %s. Requested by: %s. Job: %s.\n\n", m.Reason, orDash(m.RequestedBy), orDash(m.JobID))
	b.WriteString("You need only `sha256sum`, `tar`, `zstd` and, for databases, `createdb` and `pg_restore`.\n")
	b.WriteString("Run the commands as root on the host the instance lives on.\n\n")
	b.WriteString("## 1. Check the archive\n\n```sh\n")
	fmt.Fprintf(&b, "sha256sum -c %s.sha256\nmkdir -p /tmp/restore-%s && cd /tmp/restore-%s\n", shellQuote(archiveName), m.ID, m.ID)
	fmt.Fprintf(&b, "zstd -dc /path/to/%s | tar -xpf - --numeric-owner\n", shellQuote(archiveName))
	b.WriteString("cat manifest.json   # every file with its sha256, mode, owner and mtime\n```\n\n")
	b.WriteString("## 2. Put each component back\n\nNever overwrite a component that is present: move it aside first.\n\n```sh\n")
	for _, c := range m.Components {
		if !c.Present || c.ArchivePath == "" {
			continue
		}
		switch c.Type {
		case "dir":
			fmt.Fprintf(&b, "# component %s (directory)\n", c.Name)
			fmt.Fprintf(&b, "test ! -e %s && mkdir -p %s\n", shellQuote(c.Locator), shellQuote(filepath.Dir(c.Locator)))
			fmt.Fprintf(&b, "cp -a %s %s\n", shellQuote(c.ArchivePath), shellQuote(c.Locator))
		case "file":
			fmt.Fprintf(&b, "# component %s (file)\n", c.Name)
			fmt.Fprintf(&b, "test ! -e %s && cp -a %s %s\n", shellQuote(c.Locator),
				shellQuote(c.ArchivePath+"/"+filepath.Base(c.Locator)), shellQuote(c.Locator))
		case "postgresql":
			fmt.Fprintf(&b, "# component %s (PostgreSQL database %s)\n", c.Name, c.Locator)
			fmt.Fprintf(&b, "createdb %s\n", shellQuote(c.Locator))
			fmt.Fprintf(&b, "pg_restore --exit-on-error --no-owner --dbname=%s %s\n", shellQuote(c.Locator), shellQuote(c.ArchivePath))
		}
	}
	b.WriteString("```\n\n")
	b.WriteString("## 3. Start the instance\n\nRe-enable and start its service (for example `systemctl enable --now ")
	for _, c := range m.Components {
		if c.Type == "systemd_unit" {
			fmt.Fprintf(&b, "%s", c.Locator)
		}
	}
	b.WriteString("`), then check the application.\n\n")
	b.WriteString("With fleetsafe available, `instance_restore` with `source: archive` does all of this and verifies every checksum first.\n")
	return []byte(b.String())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
