package recovery_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
)

// TestRestore_BackupRenamedOverAfterItsChecks: once the newest backups
// of data (tar | zstd) and database (pg_dump -Fc, sidecar) passed their
// checks, another file is renamed over each path (a writer's atomic
// rename, or an attacker's); the restore must restore the files it
// checked, read through the descriptor it checked them through, never
// what the paths hold now.
func TestRestore_BackupRenamedOverAfterItsChecks(t *testing.T) {
	x := newFixture(t)
	want := tarTree(t, x.latest["data"], filepath.Base(x.f.Path("data", "acme")))
	x.destroy(t, "data", "database")
	req := x.req()
	req.AfterStep = func(step string) {
		if step != "select" {
			return
		}
		for _, c := range []string{"data", "database"} {
			tmp := x.latest[c] + ".swap"
			require.NoError(t, os.WriteFile(tmp, []byte("not the backup that was checked\n"), 0o600))
			require.NoError(t, os.Rename(tmp, x.latest[c]))
		}
	}
	res, err := recovery.Restore(context.Background(), x.f.Layout, req)
	require.NoError(t, err)
	cs := byComponent(res)
	for _, c := range []string{"data", "database"} {
		require.NotNil(t, cs[c].Backup, c)
		assert.Equal(t, x.latest[c], cs[c].Backup.Path, c)
		assert.Empty(t, cs[c].Refused, c)
	}
	assert.Equal(t, want, fleettest.Tree(t, x.f.Path("data", "acme")))
	snap := x.f.Snapshot(t, "acme")
	assert.Equal(t, x.want.Rows, snap.Rows)
}
