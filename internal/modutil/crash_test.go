package modutil_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/internal/modutil"
)

// TestCrashHook_KillsAfterTheNamedStepOnly runs the hook in a child
// process: it lives through other steps and dies by SIGKILL at the named
// one; without the variable there is no hook.
func TestCrashHook_KillsAfterTheNamedStepOnly(t *testing.T) {
	if os.Getenv("CRASH_HOOK_CHILD") == "1" {
		hook := modutil.CrashHook()
		hook("lock")
		os.Stdout.WriteString("after lock\n")
		hook("verify")
		os.Stdout.WriteString("after verify\n")
		os.Exit(0)
	}
	t.Setenv(modutil.CrashAfterEnv, "")
	if modutil.CrashHook() != nil {
		t.Fatal("a hook without " + modutil.CrashAfterEnv)
	}
	cmd := exec.Command(os.Args[0], "-test.run=TestCrashHook_KillsAfterTheNamedStepOnly")
	cmd.Env = append(os.Environ(), "CRASH_HOOK_CHILD=1", modutil.CrashAfterEnv+"=verify")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child not killed by SIGKILL: %v", err)
	}
	if string(out) != "after lock\n" {
		t.Fatalf("child output %q, want only %q", out, "after lock\n")
	}
}

// TestCrashHook_OnePlace: the crash hook is defined once, here; no module
// carries a copy of its own (two copies drift apart).
func TestCrashHook_OnePlace(t *testing.T) {
	root := fleettest.RepoRoot()
	var found []string
	for _, top := range []string{"modules", "pkg", "internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if strings.Contains(string(data), "syscall.SIGKILL)") && strings.Contains(string(data), "os.Getpid()") {
				rel, _ := filepath.Rel(root, p)
				found = append(found, rel)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if len(found) != 1 || found[0] != filepath.Join("internal", "modutil", "crash.go") {
		t.Errorf("a process killing itself after a step is defined in %v; it belongs in internal/modutil/crash.go only", found)
	}
}
