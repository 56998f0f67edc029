package sqlite_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/sqlite"
)

// A database restored from the archive belongs to the owner of its
// directory, mode 0640: the application's user can open it again.
func TestStage_RestoredFileHasTheDirectorysOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir := t.TempDir()
	dump := filepath.Join(dir, "dump.sqlite")
	u := url.URL{Scheme: "file", Path: dump, OmitHost: true}
	db, err := sql.Open("sqlite", u.String())
	require.NoError(t, err)
	_, err = db.Exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	app := filepath.Join(dir, "app")
	require.NoError(t, os.Mkdir(app, 0o750))
	require.NoError(t, os.Chown(app, 1234, 1235))
	target := kind.Target{App: "a", Instance: "i", Component: kind.Component{Name: "db"}, Locator: filepath.Join(app, "app.db")}
	k := sqlite.Kind{}
	staged, err := k.Stage(context.Background(), kind.Env{}, target, dump)
	require.NoError(t, err)
	require.NoError(t, k.PutInPlace(context.Background(), kind.Env{}, target, staged))
	fi, err := os.Stat(target.Locator)
	require.NoError(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	require.Equal(t, os.FileMode(sqlite.RestoredMode), fi.Mode().Perm())
	require.Equal(t, [2]uint32{1234, 1235}, [2]uint32{st.Uid, st.Gid})
}
