package instancesoftdelete

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// tmpfs mounts a tmpfs of size on dir until the test ends.
func tmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
}

// TestModule_FullDiskAtFinalTombstoneIsHonest is case 7 as Ansible sees
// it: every component moved, the final tombstone write hits a full disk:
// failed, changed, the components in quarantined, and a message naming
// the state left and how to finish. A re-run with space converges.
func TestModule_FullDiskAtFinalTombstoneIsHonest(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	tmpfs(t, archives, "4m")
	filler := filepath.Join(archives, "filler")
	testStepHook = func(step string) {
		if step != "quarantine:service" {
			return
		}
		w, err := os.Create(filler)
		require.NoError(t, err)
		defer w.Close()
		buf := make([]byte, 4096)
		for {
			if _, err := w.Write(buf); err != nil {
				break
			}
		}
		for {
			if _, err := w.Write(buf[:1]); err != nil {
				break
			}
		}
	}
	t.Cleanup(func() { testStepHook = nil })
	out := call(t, f, "name", "acme", "archive_dir", archives, "reason", "full disk")
	testStepHook = nil
	assert.Equal(t, true, out["failed"])
	assert.Equal(t, true, out["changed"], "every component moved")
	msg, _ := out["msg"].(string)
	assert.Contains(t, msg, "no space left on device")
	assert.Contains(t, msg, "state left: quarantining")
	assert.Contains(t, msg, "run the same task again")
	assert.Len(t, out["quarantined"], 4)
	assert.Equal(t, "quarantining", out["tombstone"].(map[string]any)["state"])

	require.NoError(t, os.Remove(filler))
	out = call(t, f, "name", "acme", "archive_dir", archives, "reason", "full disk")
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, true, out["changed"])
	assert.Equal(t, "quarantined", out["tombstone"].(map[string]any)["state"])
	out = call(t, f, "name", "acme", "archive_dir", archives, "reason", "full disk")
	require.Equal(t, false, out["failed"], out["msg"])
	assert.Equal(t, false, out["changed"])
}

// TestModule_ArchiveDirInsideAComponent is case 7's second half: refused
// in check mode and for real, naming both, nothing created.
func TestModule_ArchiveDirInsideAComponent(t *testing.T) {
	f := fleettest.New(t, false, "acme", "globex")
	archives := filepath.Join(f.Path("data", "globex"), "archives")
	for _, check := range []bool{true, false} {
		out := call(t, f, "name", "acme", "archive_dir", archives, "reason", "x", "_ansible_check_mode", check)
		assert.Equal(t, true, out["failed"])
		assert.Equal(t, false, out["changed"])
		assert.Contains(t, out["msg"], archives)
		assert.Contains(t, out["msg"], "component data of instance globex")
		assert.Contains(t, out["msg"], "nothing was changed")
	}
	_, err := os.Stat(archives)
	assert.True(t, os.IsNotExist(err))
}

// TestModule_RetentionDays is case 9 as Ansible sees it: "0" is purge at
// once (never 30), a negative value is refused.
func TestModule_RetentionDays(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	out := call(t, f, "name", "acme", "archive_dir", archives, "reason", "x", "retention_days", "-5")
	assert.Equal(t, true, out["failed"])
	assert.Equal(t, false, out["changed"])
	assert.Contains(t, out["msg"], "retention_days is -5")

	out = call(t, f, "name", "acme", "archive_dir", archives, "reason", "x", "retention_days", "0")
	require.Equal(t, false, out["failed"], out["msg"])
	ts := out["tombstone"].(map[string]any)
	assert.Equal(t, ts["deleted_at"], ts["purge_after"], "0 days: eligible at once")
	rec, err := softdelete.ReadTombstone(ts["path"].(string))
	require.NoError(t, err)
	assert.Equal(t, 0, rec.RetentionDays)
}

// TestModule_AcceptLosses: refusal names each file and the option; the
// option accepts, the result lists the losses and warns.
func TestModule_AcceptLosses(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	fifo := filepath.Join(f.Path("data", "acme"), "queue")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	out := call(t, f, "name", "acme", "archive_dir", archives, "reason", "x")
	assert.Equal(t, true, out["failed"])
	assert.Equal(t, false, out["changed"])
	assert.Contains(t, out["msg"], fifo+" is a named pipe (FIFO)")
	assert.Contains(t, out["msg"], "accept_losses: [special_files]")

	out = call(t, f, "name", "acme", "archive_dir", archives, "reason", "x", "accept_losses", []any{"nonsense"})
	assert.Equal(t, true, out["failed"])
	assert.Contains(t, out["msg"], "accept_losses")

	out = call(t, f, "name", "acme", "archive_dir", archives, "reason", "x", "accept_losses", []any{"special_files"})
	require.Equal(t, false, out["failed"], out["msg"])
	losses := out["losses"].([]any)
	require.Len(t, losses, 1)
	assert.Equal(t, fifo, losses[0].(map[string]any)["path"])
	assert.Contains(t, strings.Join(toStrings(out["warnings"]), "\n"), fifo)
}

func toStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestModule_KilledBetweenArchiveAndTombstoneIsReported is the "words"
// case: SIGKILL after the archive is verified, before the tombstone says
// quarantining; the next run says so as a warning and converges.
func TestModule_KilledBetweenArchiveAndTombstoneIsReported(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_soft_delete")
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	data, _ := json.Marshal(map[string]any{"layout_file": f.LayoutFile, "name": "acme", "archive_dir": archives, "reason": "crash test"})
	argsFile := filepath.Join(t.TempDir(), "args")
	require.NoError(t, os.WriteFile(argsFile, data, 0o600))
	run := func(crash string) map[string]any {
		cmd := exec.Command(filepath.Join(lib, "instance_soft_delete"), argsFile)
		cmd.Env = append(os.Environ(), "FLEETSAFE_SYSTEMD_DIR="+f.SystemdDir, "FLEETSAFE_TEST_CRASH_AFTER="+crash)
		out, _ := cmd.Output()
		var res map[string]any
		_ = json.Unmarshal(out, &res)
		return res
	}
	run("verify")
	killed, _ := filepath.Glob(filepath.Join(archives, "acme", "*.tar.zst"))
	require.Len(t, killed, 1, "the complete archive of the killed run")
	res := run("")
	require.Equal(t, false, res["failed"], res["msg"])
	warnings := strings.Join(toStrings(res["warnings"]), "\n")
	assert.Contains(t, warnings, "interrupted after its archive "+killed[0])
	assert.Contains(t, warnings, "nothing had been moved")
}
