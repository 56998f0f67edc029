// Package childproc starts the external tools fleetsafe runs (pg_dump,
// pg_restore, psql, mariadb, mariadb-dump, systemctl) so that none of
// them outlives the module: a module killed with SIGKILL takes its
// children with it, and every exit path of a run kills what its tool
// left behind in its process group.
//
// Three things make that hold:
//
//   - Pdeathsig = SIGKILL. On Linux the death signal is tied to the
//     thread that forked the child, not to the process (see the Go issue
//     golang/go#27505): a tool started from a thread that the runtime
//     later ends would be killed mid-run. Every child is therefore forked
//     from one dedicated thread, locked by a goroutine that never returns,
//     so that thread lives exactly as long as the module.
//   - Setpgid: each tool leads its own process group, and Wait kills that
//     group once the tool has exited but before it is reaped (its pid,
//     hence the group id, cannot be reused until then), so a worker or a
//     shell the tool started does not run on, nor holds the tool's output
//     open. A cancelled context kills the whole group too.
//
// No WaitDelay is set: once the tool has exited, what it wrote into its
// pipe is still copied to a writer that may be slow (an upload), and is
// never cut off by a timer.
package childproc

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Command is exec.CommandContext with the attributes that tie the tool
// to the module. Start it with Start (or Run, Output, CombinedOutput)
// and wait for it with Wait, never with the methods of exec.Cmd.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	g := &group{}
	groups.Store(cmd, g)
	cmd.Cancel = func() error {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.reaping {
			// The group was killed before the reaping began; the pid may
			// be gone: only the process itself, through its pidfd.
			return cmd.Process.Kill()
		}
		return killGroup(cmd)
	}
	return cmd
}

// group is what Cancel and Wait share of one command: once Wait begins
// to reap the tool, its pid no longer safely names its group.
type group struct {
	mu      sync.Mutex
	reaping bool
}

var groups sync.Map // *exec.Cmd -> *group

type startReq struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	starterOnce sync.Once
	starts      chan startReq
)

// starter forks every child from one OS thread that never ends: the
// goroutine locks it and never returns, so the runtime never reuses or
// ends that thread, and the children's death signal fires only when the
// module itself dies.
func starter() {
	runtime.LockOSThread()
	for r := range starts {
		r.done <- r.cmd.Start()
	}
}

// Start starts cmd (made by Command) from the dedicated thread.
func Start(cmd *exec.Cmd) error {
	starterOnce.Do(func() {
		starts = make(chan startReq)
		go starter()
	})
	done := make(chan error, 1)
	starts <- startReq{cmd: cmd, done: done}
	err := <-done
	if err != nil {
		groups.Delete(cmd)
	}
	return err
}

// Wait waits for cmd to exit, kills what is left of its process group
// before the tool is reaped, then completes exec.Cmd.Wait.
func Wait(cmd *exec.Cmd) error {
	if v, ok := groups.LoadAndDelete(cmd); ok && cmd.Process != nil {
		g := v.(*group)
		waitExited(cmd.Process.Pid)
		g.mu.Lock()
		_ = killGroup(cmd)
		g.reaping = true
		g.mu.Unlock()
	}
	return cmd.Wait()
}

// Run starts cmd and waits for it.
func Run(cmd *exec.Cmd) error {
	if err := Start(cmd); err != nil {
		return err
	}
	return Wait(cmd)
}

// Output runs cmd and returns its standard output, as exec.Cmd.Output
// does (with the standard error in the *exec.ExitError when cmd.Stderr
// was not set).
func Output(cmd *exec.Cmd) ([]byte, error) {
	if cmd.Stdout != nil {
		return nil, errors.New("childproc: Stdout already set")
	}
	var out, stderr bytes.Buffer
	cmd.Stdout = &out
	captured := cmd.Stderr == nil
	if captured {
		cmd.Stderr = &stderr
	}
	err := Run(cmd)
	if captured {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ee.Stderr = stderr.Bytes()
		}
	}
	return out.Bytes(), err
}

// CombinedOutput runs cmd and returns its standard output and standard
// error together.
func CombinedOutput(cmd *exec.Cmd) ([]byte, error) {
	if cmd.Stdout != nil || cmd.Stderr != nil {
		return nil, errors.New("childproc: Stdout or Stderr already set")
	}
	var b bytes.Buffer
	cmd.Stdout = &b
	cmd.Stderr = &b
	err := Run(cmd)
	return b.Bytes(), err
}

// waitExited blocks until the process pid (a child of ours) has exited,
// leaving it unreaped.
func waitExited(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// killGroup sends SIGKILL to the process group cmd leads. The group id
// is the tool's pid, which cannot name another group while the tool is
// not reaped.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}
