package instancesoftdelete

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestCrash_EveryStepConverges kills the real module process with SIGKILL
// after each step, re-runs it, and checks that the deletion completes and
// that a restore gives the instance back.
func TestCrash_EveryStepConverges(t *testing.T) {
	t.Parallel()
	lib := fleettest.BuildModules(t, "instance_soft_delete")
	steps := []string{"lock", "journal", "dump", "hash", "archive:committed", "archive:sidecar", "archive", "verify", "tombstone", "quarantine:config", "quarantine:data", "quarantine:database", "quarantined"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			// Each step has a fleet, databases and archives of its own.
			t.Parallel()
			f := fleettest.New(t, true, "acme")
			ctx := context.Background()
			archives := filepath.Join(t.TempDir(), "archives")
			before, err := f.Layout.Resolve(ctx, "acme", f.Options())
			require.NoError(t, err)
			snap := f.Snapshot(t, "acme")
			args := map[string]any{"layout_file": f.LayoutFile, "name": "acme", "archive_dir": archives, "reason": "crash test"}
			data, _ := json.Marshal(args)
			argsFile := filepath.Join(t.TempDir(), "args")
			require.NoError(t, os.WriteFile(argsFile, data, 0o600))

			run := func(crash string) (map[string]any, error) {
				cmd := exec.Command(filepath.Join(lib, "instance_soft_delete"), argsFile)
				cmd.Env = append(os.Environ(), "FLEETSAFE_SYSTEMD_DIR="+f.SystemdDir, "FLEETSAFE_TEST_CRASH_AFTER="+crash)
				out, err := cmd.Output()
				var res map[string]any
				_ = json.Unmarshal(out, &res)
				return res, err
			}
			_, err = run(step)
			require.Error(t, err, "the process was killed")

			// Every component is in place or in quarantine, never lost.
			res, err := run("")
			require.NoError(t, err, "%v", res)
			switch step {
			case "journal", "dump", "hash", "archive:committed", "archive:sidecar", "archive", "verify":
				// Killed after the journal entry, before the tombstone
				// said quarantining: the re-run names it.
				assert.NotEmpty(t, res["warnings"], "the interrupted deletion is reported")
			}
			_, err = f.Layout.Resolve(ctx, "acme", f.Options())
			var nf *instance.NotFoundError
			require.ErrorAs(t, err, &nf, "the deletion completed after the crash at %s", step)
			again, err := run("")
			require.NoError(t, err)
			assert.Equal(t, false, again["changed"])

			_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
			require.NoError(t, err)
			after, err := f.Layout.Resolve(ctx, "acme", f.Options())
			require.NoError(t, err)
			assert.Equal(t, before.Fingerprint(), after.Fingerprint())
			assert.Equal(t, snap, f.Snapshot(t, "acme"), "trees and rows byte for byte")
		})
	}
}

// TestCrash_RandomInstants kills the module at random instants of a
// deletion of a larger instance, then checks the same convergence.
func TestCrash_RandomInstants(t *testing.T) {
	t.Parallel()
	lib := fleettest.BuildModules(t, "instance_soft_delete")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for i := range 6 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			f := fleettest.New(t, true)
			f.Files = 400
			require.NoError(t, f.AddInstance(context.Background(), "acme"))
			ctx := context.Background()
			snap := f.Snapshot(t, "acme")
			archives := filepath.Join(t.TempDir(), "archives")
			data, _ := json.Marshal(map[string]any{"layout_file": f.LayoutFile, "name": "acme", "archive_dir": archives, "reason": "crash test"})
			argsFile := filepath.Join(t.TempDir(), "args")
			require.NoError(t, os.WriteFile(argsFile, data, 0o600))
			cmd := exec.Command(filepath.Join(lib, "instance_soft_delete"), argsFile)
			cmd.Env = append(os.Environ(), "FLEETSAFE_SYSTEMD_DIR="+f.SystemdDir)
			require.NoError(t, cmd.Start())
			delay := time.Duration(rng.IntN(400)) * time.Millisecond
			time.Sleep(delay)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			t.Logf("killed after %v", delay)

			rerun := exec.Command(filepath.Join(lib, "instance_soft_delete"), argsFile)
			rerun.Env = cmd.Env
			out, err := rerun.Output()
			require.NoError(t, err, string(out))
			_, err = f.Layout.Resolve(ctx, "acme", f.Options())
			var nf *instance.NotFoundError
			require.ErrorAs(t, err, &nf)
			_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
			require.NoError(t, err)
			assert.Equal(t, snap, f.Snapshot(t, "acme"))
		})
	}
}
