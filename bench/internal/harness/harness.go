// Package harness is the setup the benchmarks share: their work
// directory, shell steps, the private sshd of scripts/sshd-up.sh and its
// SSH control masters, and the tail of a failed command's output.
package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// WorkDir returns dir when it is set, else a new temporary directory named
// after pattern (os.MkdirTemp). The cleanup removes the directory it
// made, and nothing of a dir the caller named.
func WorkDir(dir, pattern string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// Sh runs script with sh -c; its error names the script and carries its
// output.
func Sh(script string) error {
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", script, err, out)
	}
	return nil
}

// SSHDEnv reads the env file scripts/sshd-up.sh writes (KEY=value lines):
// SSHD_DIR (keys, known_hosts), SSHD_PORT and SSHD_PID, each required.
func SSHDEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			out[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, k := range []string{"SSHD_DIR", "SSHD_PORT", "SSHD_PID"} {
		if out[k] == "" {
			return nil, fmt.Errorf("%s: no %s", path, k)
		}
	}
	return out, nil
}

// SSHDUp starts (or finds running) the private sshd of the repository's
// scripts/sshd-up.sh, in its default directory build/ssh, and returns its
// env (SSHDEnv).
func SSHDUp(repo string) (map[string]string, error) {
	cmd := exec.Command("bash", filepath.Join(repo, "scripts", "sshd-up.sh"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sshd-up: %w\n%s", err, out)
	}
	return SSHDEnv(filepath.Join(repo, "build", "ssh", "env"))
}

// HostName is the inventory name of host i (from 1): h001, h002…
func HostName(i int) string { return fmt.Sprintf("h%03d", i) }

// CloseMasters ends the SSH control master of every host 1..hosts, whose
// control sockets are cp/<HostName>, 16 at a time.
func CloseMasters(cp string, hosts int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 1; i <= hosts; i++ {
		wg.Add(1)
		go func(h string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_ = exec.Command("ssh", "-F", "none", "-o", "ControlPath="+filepath.Join(cp, h), "-O", "exit", "127.0.0.1").Run()
		}(HostName(i))
	}
	wg.Wait()
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
