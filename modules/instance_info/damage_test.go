package instanceinfo

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// TestInstanceInfo_DamageMode: one instance lost its data, another is gone
// but for its backups; damage=true lists both with what is missing and
// the newest good backup of each, changes nothing, and with name lists
// that instance only.
func TestInstanceInfo_DamageMode(t *testing.T) {
	ctx := context.Background()
	f := fleettest.NewSpec(t, fleettest.Spec{DB: true, Backups: true, Files: 2, Names: []string{"acme", "globex", "initech"}})
	for _, n := range []string{"acme", "globex", "initech"} {
		_, err := f.WriteBackups(ctx, n, time.Now().Add(-time.Hour))
		require.NoError(t, err)
	}
	require.NoError(t, os.RemoveAll(f.Path("data", "acme")))
	for _, c := range []string{"config", "data", "logs"} {
		require.NoError(t, os.RemoveAll(f.Path(c, "initech")))
	}
	require.NoError(t, os.Remove(f.SystemdDir+"/multi-user.target.wants/"+f.App+"@initech.service"))
	require.NoError(t, fleettest.DropDatabasesLike(ctx, f.PG, f.Database("initech")))

	out := call(t, f, "damage", "yes")
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, false, out["changed"])
	dmg := out["damaged"].([]any)
	require.Len(t, dmg, 2)
	a, i := dmg[0].(map[string]any), dmg[1].(map[string]any)
	assert.Equal(t, "acme", a["name"])
	assert.Equal(t, "partial", a["status"])
	assert.Equal(t, []any{"data"}, a["missing"])
	assert.Equal(t, true, a["restorable"])
	assert.Equal(t, "initech", i["name"])
	assert.Equal(t, "gone", i["status"])
	assert.Contains(t, i["missing"], "database")
	for _, c := range i["components"].([]any) {
		cm := c.(map[string]any)
		if cm["component"] == "database" {
			assert.Equal(t, "would_restore", cm["status"])
			assert.NotEmpty(t, cm["backup"].(map[string]any)["path"])
		}
	}
	assert.EqualValues(t, 2, out["damaged_count"])
	_, err := os.Lstat(f.Path("data", "acme"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing restored")

	out = call(t, f, "damage", true, "name", "initech")
	require.Equal(t, false, out["failed"], out["msg"])
	require.Len(t, out["damaged"].([]any), 1)
}
