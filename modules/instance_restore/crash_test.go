package instancerestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// crashFixture is a deleted instance whose quarantine was purged, so that
// the restore comes from the archive, and the module's args file.
type crashFixture struct {
	f        *fleettest.Fleet
	want     fleettest.Snapshot
	archives string
	args     string
}

func newCrashFixture(t *testing.T, files int, force bool) *crashFixture {
	return newCrashFixtureFrom(t, files, force, "archive")
}

// newCrashFixtureFrom restores from source: "archive" purges the
// quarantine first, "auto" keeps it (restore renames it back).
func newCrashFixtureFrom(t *testing.T, files int, force bool, source string) *crashFixture {
	t.Helper()
	ctx := context.Background()
	f := fleettest.NewSpec(t, fleettest.Spec{DB: true, Files: files})
	require.NoError(t, f.AddInstance(ctx, "acme"))
	want := f.Snapshot(t, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	var res *softdelete.Result
	var err error
	for range 300 {
		// The session that filled the database may take a moment to end
		// (30 s at most: seconds on a loaded machine).
		res, err = softdelete.Delete(ctx, f.Layout, softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "crash test", Options: f.Options()})
		var re *softdelete.RefusedError
		if !errors.As(err, &re) || !strings.Contains(re.Reason, "open connection") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, err)
	for _, m := range res.Quarantined {
		if source != "archive" {
			break
		}
		if m.Type == instance.TypePostgreSQL {
			require.NoError(t, fleettest.DropDatabasesLike(ctx, f.PG, m.To))
		} else {
			require.NoError(t, os.RemoveAll(m.To))
		}
	}
	params := map[string]any{"layout_file": f.LayoutFile, "name": "acme", "archive_dir": archives, "source": source}
	if force {
		// The instance is live again and force replaces every component.
		_, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
		require.NoError(t, err)
		params["force"] = true
	}
	data, _ := json.Marshal(params)
	args := filepath.Join(t.TempDir(), "args")
	require.NoError(t, os.WriteFile(args, data, 0o600))
	return &crashFixture{f: f, want: want, archives: archives, args: args}
}

func (c *crashFixture) cmd(lib, crash string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(lib, "instance_restore"), c.args)
	cmd.Env = append(os.Environ(), "FLEETSAFE_SYSTEMD_DIR="+c.f.SystemdDir, "FLEETSAFE_TEST_CRASH_AFTER="+crash)
	return cmd
}

// absentOrComplete checks invariant 10 after a crash: each dir component
// is absent or byte for byte complete, never half-filled.
func (c *crashFixture) absentOrComplete(t *testing.T, force bool, step string) {
	t.Helper()
	for _, comp := range c.f.Layout.Components {
		if comp.Type != instance.TypeDir {
			continue
		}
		p := c.f.Path(comp.Name, "acme")
		if _, err := os.Lstat(p); err != nil {
			// With force a component is absent only between being moved
			// aside and its replacement being renamed in.
			assert.False(t, force && step != "aside:"+comp.Name, "force: %s is absent after a crash at %s", comp.Name, step)
			continue
		}
		assert.Equal(t, c.want.Trees[comp.Name], fleettest.Tree(t, p), "component %s after a crash", comp.Name)
	}
}

// converges re-runs the module and checks the instance is complete and
// identical, with no staging directory, staging database or work
// directory left, and that one more run changes nothing.
func (c *crashFixture) converges(t *testing.T, lib string) {
	t.Helper()
	out, err := c.cmd(lib, "").Output()
	require.NoError(t, err, string(out))
	var res map[string]any
	require.NoError(t, json.Unmarshal(out, &res))
	require.Equal(t, false, res["failed"], res["msg"])
	assert.Equal(t, c.want, c.f.Snapshot(t, "acme"), "trees and rows byte for byte")
	inst, err := c.f.Layout.Resolve(context.Background(), "acme", c.f.Options())
	require.NoError(t, err)
	for _, st := range inst.Components {
		// Archives hold no systemd units (their files were in the purged
		// quarantine); every other component is back.
		assert.True(t, st.Present || st.Type == instance.TypeSystemdUnit, "component %s is back", st.Name)
	}
	for _, comp := range c.f.Layout.Components {
		if comp.Type == instance.TypeDir {
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(c.f.Path(comp.Name, "acme")), softdelete.StagingPrefix+"*"))
			assert.Empty(t, left, "staging leftovers")
		}
	}
	tombs, err := softdelete.Tombstones(filepath.Join(c.archives, "acme"))
	require.NoError(t, err)
	for _, ts := range tombs {
		assert.NotEqual(t, softdelete.StateQuarantining, ts.State, "tombstone %s left mid-way", ts.Path)
	}
	left, _ := filepath.Glob(filepath.Join(c.archives, "acme", ".work-*"))
	assert.Empty(t, left, "work directories")
	db, err := c.f.PG.Open(context.Background(), "postgres")
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM pg_database WHERE datname LIKE 'fsrestore%' AND datname LIKE '%' || $1 || '%'", c.f.App).Scan(&n))
	assert.Zero(t, n, "staging databases")

	if res["changed"] == true && c.args != "" {
		var again map[string]any
		out, err := c.cmd(lib, "").Output()
		require.NoError(t, err, string(out))
		require.NoError(t, json.Unmarshal(out, &again))
		if again["failed"] == false {
			// Without force a second run finds everything present.
			var params map[string]any
			data, _ := os.ReadFile(c.args)
			_ = json.Unmarshal(data, &params)
			if params["force"] == nil {
				assert.Equal(t, false, again["changed"], "idempotent")
			}
		}
	}
}

// TestCrash_RestoreEveryStepConverges kills the real module process with
// SIGKILL after each step of a restore from an archive, checks that every
// component is absent or complete, then re-runs it to the same end state.
func TestCrash_RestoreEveryStepConverges(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_restore")
	steps := []string{"lock", "verify", "stage:config", "stage:data", "stage:database", "aside:config", "place:config", "place:data", "aside:database", "place:database"}
	for _, force := range []bool{false, true} {
		for _, step := range steps {
			if !force && strings.HasPrefix(step, "aside:") || force && (step == "lock" || step == "stage:config" || step == "stage:data") {
				continue // aside steps happen with force only; early steps are the same without it
			}
			t.Run(fmt.Sprintf("force=%v/%s", force, step), func(t *testing.T) {
				// Each step has a fleet, databases and archives of its own.
				t.Parallel()
				c := newCrashFixture(t, 20, force)
				err := c.cmd(lib, step).Run()
				require.Error(t, err, "the process was killed")
				c.absentOrComplete(t, force, step)
				c.converges(t, lib)
			})
		}
	}
}

// TestCrash_RestoreFromQuarantineConverges kills a restore from quarantine
// between its renames back; the re-run brings back the rest.
func TestCrash_RestoreFromQuarantineConverges(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_restore")
	for _, step := range []string{"verify", "place:config", "place:data"} {
		t.Run(step, func(t *testing.T) {
			c := newCrashFixtureFrom(t, 20, false, "auto")
			require.Error(t, c.cmd(lib, step).Run(), "the process was killed")
			c.absentOrComplete(t, false, step)
			c.converges(t, lib)
			inst, err := c.f.Layout.Resolve(context.Background(), "acme", c.f.Options())
			require.NoError(t, err)
			assert.Equal(t, instance.StatusComplete, inst.Status, "the unit came back from quarantine too")
		})
	}
}

// TestCrash_RestoreRandomInstants kills the module at random instants of
// a restore of a larger instance (files and a database), then checks the
// same convergence.
func TestCrash_RestoreRandomInstants(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_restore")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			c := newCrashFixture(t, 300, false)
			cmd := c.cmd(lib, "")
			require.NoError(t, cmd.Start())
			delay := time.Duration(rng.IntN(500)) * time.Millisecond
			time.Sleep(delay)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			werr := cmd.Wait()
			t.Logf("SIGKILL after %v: %v", delay, werr)
			c.absentOrComplete(t, false, "")
			c.converges(t, lib)
		})
	}
}
