package mysql_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/mysql"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// runbookBlock returns the shell block of the RESTORE.md section.
func runbookBlock(t *testing.T, s string) string {
	t.Helper()
	i, j := strings.Index(s, "```sh\n"), strings.LastIndex(s, "```")
	require.True(t, i >= 0 && j > i, s)
	return s[i+6 : j]
}

// TestRunbookStep_RunByHand: the RESTORE.md block, run literally by bash
// on a real archive (soft delete through the library; the database then
// purged, so that only the archive holds it), puts the database back
// dumping byte for byte as before (views, routines, triggers, events),
// leaves no work directory, and refuses (changing nothing) when the
// database exists. An instance name with non-ASCII letters, dots, @, +, =,
// :, ^ and a dash (what instance names may hold beyond [a-z0-9-]) goes
// through the same block.
func TestRunbookStep_RunByHand(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("zstd not installed")
	}
	c, db := server(t)
	ctx := context.Background()
	for i, name := range []string{"acme", "ünï.c@d+e=f:g-h^"} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			root := t.TempDir()
			prefix := "rb" + suffix()
			dropPrefix(t, db, prefix)
			l, err := instance.ParseLayout([]byte(fmt.Sprintf("app: nc\nname_pattern: '^[a-zï-ü.@+=:^-]+$'\ncomponents:\n  - name: db\n    type: mysql\n    database: %s_{name}\n", prefix)), "nc.yml")
			require.NoError(t, err)
			dbName := prefix + "_" + name
			fill(t, db, dbName)
			want := dumpOf(t, c, dbName)
			opts := instance.Options{SkipSizes: true, SystemdDir: filepath.Join(root, "systemd")}
			res, err := softdelete.Delete(ctx, l, softdelete.Request{Name: name, ArchiveDir: filepath.Join(root, "archives"), Reason: "test", Options: opts})
			require.NoError(t, err)
			q := quarantineOf(t, res, "db")
			_, err = mariadb.Purge(ctx, db, q.To)
			require.NoError(t, err)
			require.False(t, exists(t, db, dbName))

			var b strings.Builder
			mysql.Kind{}.RunbookStep(&b, kind.RunbookStep{Component: "db", Type: "mysql", Locator: dbName,
				ArchivePath: "components/db.sql", Present: true, Archive: res.Archive.Path, Tag: "t1"})
			script := runbookBlock(t, b.String())
			out, err := exec.Command("bash", "-c", script).CombinedOutput()
			require.NoError(t, err, "%s\n%s", out, script)
			assert.Equal(t, want, dumpOf(t, c, dbName), "the block restores it byte for byte")
			entries, err := os.ReadDir(filepath.Dir(res.Archive.Path))
			require.NoError(t, err)
			for _, e := range entries {
				assert.False(t, strings.HasPrefix(e.Name(), ".fleetsafe-restore-"), "work directory left: %s", e.Name())
			}

			out, err = exec.Command("bash", "-c", script).CombinedOutput()
			require.Error(t, err)
			assert.Contains(t, string(out), "REFUSED")
			assert.Equal(t, want, dumpOf(t, c, dbName), "the refusal changed nothing")
		})
	}
}

// TestRunbookStep_BashSyntax: the block is valid bash for database names
// that break naive quoting.
func TestRunbookStep_BashSyntax(t *testing.T) {
	for _, name := range []string{"plain", "a`b", "q'uote", "new\nline", "-dash", "d\"q$(x)", "back\\slash"} {
		var b strings.Builder
		mysql.Kind{}.RunbookStep(&b, kind.RunbookStep{Component: "db", Type: "mysql", Locator: "nc_" + name,
			ArchivePath: "components/db.sql", Present: true, Archive: "/srv/archives/x/a.tar.zst", Tag: "t1", Index: 1})
		out, err := exec.Command("bash", "-n", "-c", runbookBlock(t, b.String())).CombinedOutput()
		require.NoError(t, err, "%q: %s", name, out)
	}
}
