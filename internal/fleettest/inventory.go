package fleettest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Inventory writes an inventory whose hosts are all this machine, one per
// fleet, with the fleetsafe_* variables the playbooks read.
func Inventory(tb testing.TB, archives string, fleets map[string]*Fleet) string {
	tb.Helper()
	var b strings.Builder
	b.WriteString("all:\n  hosts:\n")
	for host, f := range fleets {
		fmt.Fprintf(&b, "    %s:\n      ansible_connection: local\n", host)
		fmt.Fprintf(&b, "      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n")
		fmt.Fprintf(&b, "      fleetsafe_layout_file: %s\n", f.LayoutFile)
		fmt.Fprintf(&b, "      fleetsafe_archive_dir: %s\n", filepath.Join(archives, host))
		fmt.Fprintf(&b, "      fleetsafe_systemd_dir: %s\n", f.SystemdDir)
	}
	path := filepath.Join(tb.TempDir(), "inventory.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}
