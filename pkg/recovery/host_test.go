package recovery_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
)

// TestRecoverHost_FailureDoesNotStopOthers: three damaged instances, the
// middle one in priority with every data backup broken; the others are
// restored, the broken one is reported failed (its config restored), and
// the error names it alone. The order is priority, then last activity.
func TestRecoverHost_FailureDoesNotStopOthers(t *testing.T) {
	ctx := context.Background()
	f, err := fleettest.Generate(ctx, fleettest.Spec{Root: t.TempDir(), Backups: true, Names: []string{"acme", "globex", "initech"}})
	require.NoError(t, err)
	for _, n := range []string{"acme", "globex", "initech"} {
		b, err := f.WriteBackups(ctx, n, time.Now().Add(-time.Hour))
		require.NoError(t, err)
		if n == "globex" {
			require.NoError(t, os.WriteFile(b["data"], []byte("broken"), 0o600))
		}
		require.NoError(t, os.RemoveAll(f.Path("data", n)))
		require.NoError(t, os.RemoveAll(f.Path("config", n)))
	}
	plan, err := recovery.RecoverHost(ctx, f.Layout, recovery.HostRequest{Priority: []string{"initech", "globex"}, Options: f.Options()})
	require.NoError(t, err, "the plan alone is no failure")
	assert.Equal(t, []string{"initech", "globex", "acme"}, plan.Order)
	assert.Equal(t, recovery.ResultNotRestorable, plan.Outcomes[1].Result)
	assert.False(t, plan.Changed)
	require.NoDirExists(t, f.Path("data", "acme"))

	res, err := recovery.RecoverHost(ctx, f.Layout, recovery.HostRequest{Priority: []string{"initech", "globex"}, Confirm: true, Options: f.Options()})
	var he *recovery.HostError
	require.ErrorAs(t, err, &he)
	assert.Equal(t, []string{"globex"}, he.Failed)
	require.Len(t, res.Outcomes, 3)
	assert.Equal(t, recovery.ResultRestored, res.Outcomes[0].Result)
	assert.Equal(t, recovery.ResultPartly, res.Outcomes[1].Result)
	assert.Equal(t, []string{"config"}, res.Outcomes[1].Restored)
	assert.Contains(t, res.Outcomes[1].Error, "data")
	assert.Equal(t, recovery.ResultRestored, res.Outcomes[2].Result, "acme after the failure")
	assert.DirExists(t, f.Path("data", "acme"))
	assert.NoDirExists(t, f.Path("data", "globex"))
}
