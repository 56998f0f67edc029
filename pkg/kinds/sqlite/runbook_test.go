package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/sqlite"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// RESTORE.md's block, run literally by bash on a real archive, puts the
// archived copy back with the same rows, and refuses (changing nothing)
// beside a stale -wal.
func TestRunbookStep_RunByHand(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("zstd not installed")
	}
	ctx := context.Background()
	root := t.TempDir()
	live := filepath.Join(root, "srv", "acme", "app.db")
	require.NoError(t, os.MkdirAll(filepath.Dir(live), 0o755))
	u := url.URL{Scheme: "file", Path: live, OmitHost: true}
	db, err := sql.Open("sqlite", u.String())
	require.NoError(t, err)
	_, err = db.Exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('a'), ('b')")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	want, err := sqlitedb.Digest(ctx, live)
	require.NoError(t, err)
	l, err := instance.ParseLayout([]byte(fmt.Sprintf("app: notes\ncomponents:\n  - name: db\n    type: sqlite\n    path: %s/srv/{name}/app.db\n", root)), "notes.yml")
	require.NoError(t, err)
	res, err := softdelete.Delete(ctx, l, softdelete.Request{Name: "acme", ArchiveDir: filepath.Join(root, "archives"), Reason: "test",
		Options: instance.Options{SkipSizes: true, SystemdDir: filepath.Join(root, "systemd")}})
	require.NoError(t, err)

	dest := filepath.Join(t.TempDir(), "back", "app's db")
	var b strings.Builder
	sqlite.Kind{}.RunbookStep(&b, kind.RunbookStep{Component: "db", Type: "sqlite", Locator: dest,
		ArchivePath: "components/db.sqlite", Present: true, Archive: res.Archive.Path, Tag: "t1"})
	s := b.String()
	i, j := strings.Index(s, "```sh\n"), strings.LastIndex(s, "```")
	require.True(t, i >= 0 && j > i, s)
	run := func() (string, error) {
		out, err := exec.Command("bash", "-c", s[i+6:j]).CombinedOutput()
		return string(out), err
	}
	out, err := run()
	require.NoError(t, err, out)
	got, err := sqlitedb.Digest(ctx, dest)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	entries, err := os.ReadDir(filepath.Dir(dest))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no staging leftover")

	require.NoError(t, os.Remove(dest))
	require.NoError(t, os.WriteFile(dest+"-wal", []byte("stale"), 0o600))
	out, err = run()
	require.Error(t, err)
	assert.Contains(t, out, "REFUSED")
	assert.NoFileExists(t, dest)
}
