package childproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(st), ") Z ")
}

func waitDead(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive %v later", pid, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHelperModule is the module of TestKilledModuleTakesItsTools: it
// starts a tool the way the library does, says its pid, and waits to be
// killed.
func TestHelperModule(t *testing.T) {
	if os.Getenv("CHILDPROC_HELPER") != "1" {
		t.Skip("helper process")
	}
	// The tool is started by a goroutine whose thread then ends (locked,
	// never unlocked): a death signal tied to that thread would kill it.
	// Several, so that some run on threads other than the main one
	// (which the runtime never ends).
	const n = 4
	pids := make(chan int, n)
	for range n {
		go func() {
			runtime.LockOSThread()
			cmd := Command(context.Background(), "sleep", "60")
			if err := Start(cmd); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			time.Sleep(50 * time.Millisecond)
			pids <- cmd.Process.Pid
		}()
	}
	for range n {
		fmt.Println(<-pids)
	}
	time.Sleep(time.Minute)
}

// TestKilledModuleTakesItsTools: a module killed with SIGKILL leaves no
// tool of its own running; a tool outlives the thread that asked for it.
func TestKilledModuleTakesItsTools(t *testing.T) {
	c := exec.Command(os.Args[0], "-test.run=^TestHelperModule$")
	c.Env = append(os.Environ(), "CHILDPROC_HELPER=1")
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for range 4 {
		var pid int
		if _, err := fmt.Fscan(out, &pid); err != nil {
			_ = c.Process.Kill()
			_ = c.Wait()
			t.Fatalf("helper said no pid: %v", err)
		}
		pids = append(pids, pid)
	}
	// The goroutines that started them have ended with their threads.
	time.Sleep(300 * time.Millisecond)
	for _, pid := range pids {
		if !alive(pid) {
			t.Errorf("the tool %d died when the thread that asked for it ended", pid)
		}
	}
	if err := c.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = c.Wait()
	for _, pid := range pids {
		waitDead(t, pid, 2*time.Second)
	}
}

// TestRunKillsWhatTheToolLeft: a tool that exits leaving a background
// process in its group takes it along; Output does not wait for it.
func TestRunKillsWhatTheToolLeft(t *testing.T) {
	start := time.Now()
	out, err := Output(Command(context.Background(), "sh", "-c", "sleep 60 & echo $!"))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Output waited %v for the tool's background process", d)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	waitDead(t, pid, 2*time.Second)
}

// TestCancelKillsTheGroup: a cancelled context ends the tool and what it
// started.
func TestCancelKillsTheGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := Command(ctx, "sh", "-c", "sleep 60 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := Start(cmd); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscan(out, &pid); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := Wait(cmd); err == nil {
		t.Error("a cancelled tool reported success")
	}
	waitDead(t, pid, 2*time.Second)
}

// TestOutputStderr: a failing tool's standard error reaches the caller.
func TestOutputStderr(t *testing.T) {
	_, err := Output(Command(context.Background(), "sh", "-c", "echo oops >&2; exit 3"))
	ee, ok := err.(*exec.ExitError)
	if !ok || strings.TrimSpace(string(ee.Stderr)) != "oops" || ee.ExitCode() != 3 {
		t.Fatalf("err = %#v", err)
	}
}
