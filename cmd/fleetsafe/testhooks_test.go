package main

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/internal/testhooks"
)

// hookNames are the environment variables of the test hooks.
var hookNames = []string{testhooks.CrashAfterEnv, "FLEETSAFE_SYSTEMD_DIR", "FLEETSAFE_SYSTEMCTL"}

// TestRelease_NoTestHooks: the release binary (built as `make collection`
// builds binaries/linux_<arch>/fleetsafe, without the tag) ignores
// FLEETSAFE_TEST_CRASH_AFTER: a soft delete asked to crash after verify
// completes; the hooks' variable names are not in the binary and its
// build settings carry no tag. The same run with the binary the tests
// build (with the tag) is killed at that step, so the test can fail.
func TestRelease_NoTestHooks(t *testing.T) {
	root := fleettest.RepoRoot()
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	require.NoError(t, err)
	var release, test int
	for _, line := range strings.Split(string(mk), "\n") {
		if !strings.Contains(line, "$(GO) build") || !strings.Contains(line, "./cmd/fleetsafe") {
			continue
		}
		hooks := strings.Contains(line, "$(TESTHOOKS)") || strings.Contains(line, testhooks.Tag)
		switch {
		case strings.Contains(line, "binaries/linux_$$arch/fleetsafe"):
			release++
			assert.False(t, hooks, "make collection builds the release binaries with the test hooks: %s", line)
		case strings.Contains(line, "$(LIBRARY)/fleetsafe"):
			test++
			assert.True(t, hooks, "make build builds without the test hooks, which the tests and the demo need: %s", line)
		}
	}
	require.Equal(t, 1, release, "the release build line of make collection")
	require.Equal(t, 1, test, "the build line of make build")

	dir := t.TempDir()
	rel := filepath.Join(dir, "release", "fleetsafe")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", rel, "./cmd/fleetsafe")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	tagged := fleettest.BuildFleetsafe(t, t.TempDir())

	data, err := os.ReadFile(rel)
	require.NoError(t, err)
	for _, n := range hookNames {
		assert.False(t, bytes.Contains(data, []byte(n)), "the release binary holds %s", n)
	}
	bi, err := buildinfo.ReadFile(rel)
	require.NoError(t, err)
	for _, s := range bi.Settings {
		assert.NotContains(t, s.Value, testhooks.Tag, "build setting %s", s.Key)
	}
	tdata, err := os.ReadFile(tagged)
	require.NoError(t, err)
	for _, n := range hookNames {
		assert.True(t, bytes.Contains(tdata, []byte(n)), "the tests' binary lacks %s", n)
	}

	// A fleet of directories only: the release binary reads the host's
	// systemd, not FLEETSAFE_SYSTEMD_DIR.
	f := fleet(t, "acme", "globex")
	app := f.Layout.App
	layout := filepath.Join(t.TempDir(), "layout.yml")
	require.NoError(t, os.WriteFile(layout, []byte(fmt.Sprintf("app: %s\ncomponents:\n"+
		"  - name: config\n    type: dir\n    path: %s/etc/%s/{name}\n"+
		"  - name: data\n    type: dir\n    path: %s/srv/%s/{name}/data\n", app, f.Root, app, f.Root, app)), 0o644))
	softDelete := func(bin, name string) (map[string]any, error) {
		link := filepath.Join(filepath.Dir(bin), "instance_soft_delete")
		_ = os.Remove(link)
		require.NoError(t, os.Link(bin, link))
		args, _ := json.Marshal(map[string]any{"layout_file": layout, "name": name,
			"archive_dir": filepath.Join(dir, "archives"), "reason": "test hooks"})
		argsFile := filepath.Join(t.TempDir(), "args")
		require.NoError(t, os.WriteFile(argsFile, args, 0o600))
		cmd := exec.Command(link, argsFile)
		cmd.Env = append(os.Environ(), testhooks.CrashAfterEnv+"=verify")
		out, err := cmd.Output()
		var res map[string]any
		_ = json.Unmarshal(out, &res)
		return res, err
	}
	res, err := softDelete(rel, "acme")
	require.NoError(t, err, "the release binary ignored the crash hook and completed: %v", res)
	assert.Equal(t, true, res["changed"], "%v", res)
	_, err = os.Stat(f.Path("config", "acme"))
	assert.True(t, errors.Is(err, os.ErrNotExist), "acme quarantined: %v", err)

	_, err = softDelete(tagged, "globex")
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "the tests' binary honours the crash hook: %v", err)
	assert.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())
}
