package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlock pty: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("pty number: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return m, s
}

// runOnTTY runs the binary with stderr on a terminal and returns its exit
// status, stdout and what the terminal showed.
func runOnTTY(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	master, slave := openPTY(t)
	shown := make(chan string)
	go func() {
		var buf bytes.Buffer
		_, _ = io.Copy(&buf, master) // ends with EIO once the slave is closed
		shown <- buf.String()
	}()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, slave
	err := cmd.Run()
	slave.Close()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, out.String(), <-shown
}

// TestCLI_ProgressBarOnATerminalOnly: soft-delete, verify-archive and
// restore draw a progress bar on stderr when it is a terminal (each phase
// ending at 100%), and nothing with --json or when stderr is not a
// terminal.
func TestCLI_ProgressBarOnATerminalOnly(t *testing.T) {
	f := fleet(t, "acme", "globex")
	bin := fleettest.BuildFleetsafe(t, t.TempDir())
	archives := t.TempDir()
	base := []string{"--layout-file", f.LayoutFile, "--archive-dir", archives}

	code, stdout, tty := runOnTTY(t, bin, append([]string{"soft-delete", "acme", "--reason", "progress"}, base...)...)
	require.Equal(t, 0, code, stdout+tty)
	assert.Regexp(t, `\rarchive  \[#{30}\] 100%  [0-9.]+ [KM]?i?B / [0-9.]+ [KM]?i?B  [0-9]+/[0-9]+ files`, tty)
	assert.Regexp(t, `\rverify   \[#{30}\] 100%`, tty)
	assert.NotContains(t, stdout, "[#", "the bar is on stderr only")

	code, stdout, tty = runOnTTY(t, bin, append([]string{"soft-delete", "globex", "--reason", "progress", "--json"}, base...)...)
	require.Equal(t, 0, code, stdout+tty)
	assert.NotContains(t, tty, "[#", "no bar with --json")
	archive := decode(t, stdout)["archive"].(map[string]any)["path"].(string)

	code, stdout, tty = runOnTTY(t, bin, "verify-archive", archive)
	require.Equal(t, 0, code, stdout+tty)
	assert.Regexp(t, `\rverify   \[#{30}\] 100%`, tty)

	code, stdout, tty = runOnTTY(t, bin, append([]string{"restore", "acme", "--source", "archive"}, base...)...)
	require.Equal(t, 0, code, stdout+tty)
	assert.Regexp(t, `\rrestore  \[#{30}\] 100%`, tty)

	code, stdout, stderr := cli(t, bin, append([]string{"restore", "globex", "--source", "archive"}, base...)...)
	require.Equal(t, 0, code, stdout+stderr)
	assert.Empty(t, stderr, "nothing on a stderr that is not a terminal")
}

func TestRenderProgress(t *testing.T) {
	assert.Equal(t, "archive  [###############---------------]  50%  1.5 KiB / 3.0 KiB  1/4 files",
		renderProgress(archive.Progress{Phase: "archive", BytesDone: 1536, BytesTotal: 3072, FilesDone: 1, FilesTotal: 4}))
	assert.Equal(t, "verify   [##############################] 100%  0 B / 0 B",
		renderProgress(archive.Progress{Phase: "verify"}))
	assert.True(t, strings.HasSuffix(renderProgress(archive.Progress{Phase: "restore", BytesDone: 5 << 30, BytesTotal: 5 << 30}), "5.0 GiB / 5.0 GiB"))
}
