package playbooks_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// TestRecoverFleet_PlanThenConfirm drives playbooks/recover_fleet.yml on
// two inventory hosts with nightly backups. acme lost its data, globex is
// gone (its newest data backup broken), initech lost its database and
// every dump of it is broken. Without confirm the play shows the plan and
// changes nothing; with confirm=true and priority it restores acme and
// globex (globex from the night before), reports initech failed without
// stopping the others, prints the table and fails the job.
func TestRecoverFleet_PlanThenConfirm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := fleettest.NewSpec(t, fleettest.Spec{DB: true, Backups: true, Files: 3, Names: []string{"acme", "globex"}})
	b := fleettest.NewSpec(t, fleettest.Spec{DB: true, Backups: true, Files: 3, Names: []string{"initech"}})
	night := map[string]map[string]string{}
	for _, x := range []struct {
		f    *fleettest.Fleet
		name string
	}{{a, "acme"}, {a, "globex"}, {b, "initech"}} {
		_, err := x.f.WriteBackups(ctx, x.name, time.Now().Add(-25*time.Hour))
		require.NoError(t, err)
		night[x.name], err = x.f.WriteBackups(ctx, x.name, time.Now().Add(-time.Hour))
		require.NoError(t, err)
	}
	require.NoError(t, os.RemoveAll(a.Path("data", "acme")))
	for _, c := range []string{"config", "data", "logs"} {
		require.NoError(t, os.RemoveAll(a.Path(c, "globex")))
	}
	require.NoError(t, os.Remove(a.SystemdDir+"/multi-user.target.wants/"+a.App+"@globex.service"))
	require.NoError(t, fleettest.DropDatabasesLike(ctx, a.PG, a.Database("globex")))
	require.NoError(t, os.WriteFile(night["globex"]["data"], []byte("broken"), 0o600))
	require.NoError(t, fleettest.DropDatabasesLike(ctx, b.PG, b.Database("initech")))
	dumps, err := os.ReadDir(b.BackupDir("initech"))
	require.NoError(t, err)
	for _, d := range dumps {
		if strings.HasPrefix(d.Name(), "db-") && strings.HasSuffix(d.Name(), ".dump") {
			require.NoError(t, os.WriteFile(b.BackupDir("initech")+"/"+d.Name(), []byte("PGDMP broken"), 0o600))
		}
	}
	lib := fleettest.BuildModules(t)
	inv := fleettest.Inventory(t, t.TempDir(), map[string]*fleettest.Fleet{"web-a": a, "web-b": b})

	run := fleettest.RunPlaybookArgs(t, lib, []string{"-i", inv, "playbooks/recover_fleet.yml"}, map[string]any{})
	require.NoError(t, run.Err, run.Output)
	assert.Contains(t, run.Output, "acme (partial, missing data): data <- "+night["acme"]["data"])
	assert.Contains(t, run.Output, "globex (gone, missing config, data, logs, service, database)")
	assert.Contains(t, run.Output, "1 newer refused")
	assert.Contains(t, run.Output, "database: no_good_backup")
	assert.NotContains(t, run.Output, "Restore one instance from its backups]\nok")
	require.NoDirExists(t, a.Path("data", "acme"), "the plan changed nothing")

	run = fleettest.RunPlaybookArgs(t, lib, []string{"-i", inv, "playbooks/recover_fleet.yml"},
		map[string]any{"confirm": true, "priority": []string{"globex"}, "fleetsafe_recover_per_host": 2})
	require.Error(t, run.Err, "initech was not restored: the job fails")
	assert.Contains(t, run.Output, "not fully restored from backups: initech")
	assert.DirExists(t, a.Path("data", "acme"))
	assert.DirExists(t, a.Path("config", "globex"))
	assert.DirExists(t, a.Path("data", "globex"))
	inst, err := a.Layout.Resolve(ctx, "globex", a.Options())
	require.NoError(t, err)
	st, _ := inst.State("database")
	assert.True(t, st.Present, "globex's database is back")
	assert.Regexp(t, regexp.MustCompile(`acme\s+web-a\s+ok\s+data\s`), run.Output)
	assert.Regexp(t, regexp.MustCompile(`globex\s+web-a\s+ok\s+config,data,database\s+25\.0h`), run.Output, "globex's recovery point is the night before")
	assert.Regexp(t, regexp.MustCompile(`initech\s+web-b\s+FAILED\s`), run.Output)
	assert.Contains(t, run.Output, "web-a: globex", "progress per instance")
	if i := strings.Index(run.Output, "TASK [Table of the recovery"); i >= 0 {
		t.Log(run.Output[i:min(len(run.Output), i+1500)])
	}
}
