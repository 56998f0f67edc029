// Command transfer measures, over a real SSH connection, what it costs to
// get fleetsafe modules to their targets: TASKS tasks of instance_info on
// HOSTS inventory hosts, aliases of 127.0.0.1 that each have their own SSH
// connection (control socket) and their own cache directory, served by the
// private sshd of scripts/sshd-up.sh. Three runs, in one process:
//
//   - before: the module as ansible-core runs a binary module, copied to
//     the target for every task (build/library/instance_info);
//   - after, cold: fleetsafe.instances.instance_info through the action
//     plugin with empty caches: one copy per host, then cached runs;
//   - after, warm: the same again, every run from the cache.
//
// Bytes are counted on the wire by a ProxyCommand relay (this program with
// -proxy), both ways, SSH framing and compression included. Time is the
// ansible-playbook run; the controller's peak RSS is its process tree's
// (GNU time); the target's is the peak memory of the sshd's cgroup (its
// sessions and the modules they run, page cache included) where cgroup v1
// memory accounting is writable.
//
//	bash scripts/sshd-up.sh && go run ./bench/transfer -hosts 20 -tasks 20
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fleetsafe/fleetsafe/bench/internal/harness"
	"github.com/fleetsafe/fleetsafe/bench/internal/measure"
)

func main() {
	if len(os.Args) == 5 && os.Args[1] == "-proxy" {
		if err := proxy(os.Args[2], os.Args[3], os.Args[4]); err != nil {
			fmt.Fprintln(os.Stderr, "transfer -proxy:", err)
			os.Exit(1)
		}
		return
	}
	repo := flag.String("repo", ".", "the repository, with `make build` done")
	sshd := flag.String("sshd", "build/ssh", "directory of scripts/sshd-up.sh")
	hosts := flag.Int("hosts", 20, "inventory hosts (aliases of 127.0.0.1)")
	tasks := flag.Int("tasks", 20, "tasks per host")
	forks := flag.Int("forks", 10, "ansible forks")
	flag.Parse()
	if err := run(*repo, *sshd, *hosts, *tasks, *forks); err != nil {
		fmt.Fprintln(os.Stderr, "bench transfer:", err)
		os.Exit(1)
	}
}

// result is one measured run.
type result struct {
	name       string
	up, down   int64
	conns      int
	sample     measure.Sample
	targetPeak int64 // bytes; 0 when unknown
}

func run(repo, sshdDir string, hosts, tasks, forks int) error {
	repo, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	if !filepath.IsAbs(sshdDir) {
		sshdDir = filepath.Join(repo, sshdDir)
	}
	env, err := harness.SSHDEnv(filepath.Join(sshdDir, "env"))
	if err != nil {
		return fmt.Errorf("%w (run scripts/sshd-up.sh first)", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bin := filepath.Join(repo, "build", "library", "instance_info")
	st, err := os.Stat(bin)
	if err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	work, err := os.MkdirTemp("", "fsbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	cg := newCgroup(env["SSHD_PID"])
	defer cg.close()

	fmt.Printf("transfer: %d tasks of instance_info on %d hosts over SSH (127.0.0.1:%s, forks %d, ansible's default ssh_args -C, ControlPersist), binary %.1f MB\n",
		tasks, hosts, env["SSHD_PORT"], forks, float64(st.Size())/1e6)
	var results []result
	for i, mode := range []struct{ name, module string }{
		{"before: copy per task", "instance_info"},
		{"after: cache, cold", "fleetsafe.instances.instance_info"},
		{"after: cache, warm", "fleetsafe.instances.instance_info"},
	} {
		r, err := runOnce(repo, work, self, env, i, mode.name, mode.module, hosts, tasks, forks, cg)
		if err != nil {
			return fmt.Errorf("%s: %w", mode.name, err)
		}
		results = append(results, r)
	}
	report(results, hosts*tasks)
	return nil
}

func runOnce(repo, work, self string, env map[string]string, idx int, name, module string, hosts, tasks, forks int, cg *cgroup) (result, error) {
	run := filepath.Join(work, fmt.Sprintf("run%d", idx))
	counts := filepath.Join(run, "counts")
	cp := filepath.Join(work, "cp-"+filepath.Base(run))
	for _, d := range []string{counts, cp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return result{}, err
		}
	}
	// Caches live across the two "after" runs (cold, then warm).
	caches := filepath.Join(work, "caches")
	inv, err := inventory(run, env, self, counts, cp, caches, hosts)
	if err != nil {
		return result{}, err
	}
	play, err := playbook(run, repo, module, tasks)
	if err != nil {
		return result{}, err
	}
	cfg := filepath.Join(run, "ansible.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`[defaults]
library = %s/build/library
collections_path = %s/build/collections
forks = %d
host_key_checking = True
interpreter_python = auto_silent
retry_files_enabled = False
stdout_callback = default
nocows = True
`, repo, repo, forks)), 0o644); err != nil {
		return result{}, err
	}
	cg.reset()
	ansible := filepath.Join(repo, ".venv", "bin", "ansible-playbook")
	s, out, err := measure.Run("env", "ANSIBLE_CONFIG="+cfg, "ANSIBLE_NOCOLOR=1", ansible, "-i", inv, play)
	peak := cg.peak()
	harness.CloseMasters(cp, hosts) // each relay ends and writes its count
	if err != nil {
		return result{}, fmt.Errorf("ansible-playbook: %v\n%s", err, harness.Tail(out, 40))
	}
	if want := fmt.Sprintf("ok=%d ", tasks); strings.Count(out, want) != hosts {
		return result{}, fmt.Errorf("expected %d hosts with %s in the recap:\n%s", hosts, want, harness.Tail(out, 30))
	}
	up, down, conns, err := readCounts(counts)
	if err != nil {
		return result{}, err
	}
	return result{name: name, up: up, down: down, conns: conns, sample: s, targetPeak: peak}, nil
}

func inventory(run string, env map[string]string, self, counts, cp, caches string, hosts int) (string, error) {
	var b strings.Builder
	b.WriteString("all:\n  children:\n    bench:\n      vars:\n")
	fmt.Fprintf(&b, "        ansible_host: 127.0.0.1\n        ansible_port: %s\n        ansible_user: root\n", env["SSHD_PORT"])
	fmt.Fprintf(&b, "        ansible_ssh_private_key_file: %s/client_ed25519\n", env["SSHD_DIR"])
	b.WriteString("      hosts:\n")
	for i := 1; i <= hosts; i++ {
		h := harness.HostName(i)
		args := fmt.Sprintf("-o UserKnownHostsFile=%s/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o ProxyCommand='%s -proxy %s/%s 127.0.0.1 %s'",
			env["SSHD_DIR"], self, counts, h, env["SSHD_PORT"])
		fmt.Fprintf(&b, "        %s:\n          ansible_control_path: %s/%s\n          ansible_ssh_common_args: %q\n          fleetsafe_cache_dir: %s/%s\n",
			h, cp, h, args, caches, h)
	}
	path := filepath.Join(run, "inventory.yml")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

func playbook(run, repo, module string, tasks int) (string, error) {
	var b strings.Builder
	b.WriteString("- name: Transfer benchmark\n  hosts: bench\n  gather_facts: false\n  tasks:\n")
	for i := 1; i <= tasks; i++ {
		fmt.Fprintf(&b, "    - name: Discover %d\n      %s:\n        layout_file: %s/examples/layouts/nextcloud.yml\n        name: acme\n        sizes: false\n",
			i, module, repo)
	}
	path := filepath.Join(run, "play.yml")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// readCounts sums the relays' counts, waiting until every relay that
// started has ended.
func readCounts(dir string) (up, down int64, conns int, err error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		starts, _ := filepath.Glob(filepath.Join(dir, "*.start"))
		ends, _ := filepath.Glob(filepath.Join(dir, "*.count"))
		if len(starts) == len(ends) && len(ends) > 0 {
			for _, e := range ends {
				data, err := os.ReadFile(e)
				if err != nil {
					return 0, 0, 0, err
				}
				var u, d int64
				if _, err := fmt.Sscan(string(data), &u, &d); err != nil {
					return 0, 0, 0, fmt.Errorf("%s: %w", e, err)
				}
				up, down = up+u, down+d
			}
			return up, down, len(ends), nil
		}
		if time.Now().After(deadline) {
			return 0, 0, 0, fmt.Errorf("%d SSH relays started and %d ended in %s", len(starts), len(ends), dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// proxy relays stdin/stdout to host:port and, when both directions are
// done or ssh ends it (SIGHUP when its master exits), writes the bytes each
// way to prefix.<pid>.count.
func proxy(prefix, host, port string) error {
	name := fmt.Sprintf("%s.%d", prefix, os.Getpid())
	if err := os.WriteFile(name+".start", nil, 0o644); err != nil {
		return err
	}
	conn, err := net.Dial("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return err
	}
	var up, down atomic.Int64
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(counter{os.Stdout, &down}, conn)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(counter{conn, &up}, os.Stdin)
		_ = conn.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGPIPE)
	for n := 0; n < 2; n++ {
		select {
		case <-done:
			continue
		case <-sig:
		}
		break
	}
	return os.WriteFile(name+".count", []byte(fmt.Sprintf("%d %d\n", up.Load(), down.Load())), 0o644)
}

// counter counts the bytes written through it.
type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func report(rs []result, runs int) {
	fmt.Printf("%-28s %14s %14s %8s %10s %12s %14s %14s\n", "", "bytes sent", "bytes back", "conns", "time", "per task", "controller RSS", "target peak")
	for _, r := range rs {
		fmt.Printf("%-28s %14s %14s %8d %9.1fs %10.1fms %14s %14s\n", r.name, mb(r.up), mb(r.down), r.conns,
			r.sample.Wall.Seconds(), float64(r.sample.Wall.Milliseconds())/float64(runs), measure.RSS(r.sample.MaxRSS), mbOrUnknown(r.targetPeak))
	}
	b := rs[0]
	for _, r := range rs[1:] {
		fmt.Printf("ratio %-22s bytes sent %.4f×, time %.2f×\n", r.name+"/before:", float64(r.up)/float64(b.up), r.sample.Wall.Seconds()/b.sample.Wall.Seconds())
	}
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func mbOrUnknown(n int64) string {
	if n == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// cgroup is a cgroup v1 memory group holding the sshd, so that the peak
// memory of its sessions can be read; every method is a no-op when it
// could not be made.
type cgroup struct{ dir, parent, pid string }

var memoryLine = regexp.MustCompile(`(?m)^\d+:memory:(.*)$`)

func newCgroup(pid string) *cgroup {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return &cgroup{}
	}
	m := memoryLine.FindStringSubmatch(string(data))
	if m == nil {
		return &cgroup{}
	}
	parent := filepath.Join("/sys/fs/cgroup/memory", m[1])
	dir := filepath.Join(parent, fmt.Sprintf("fsbench-sshd-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return &cgroup{}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(pid), 0o644); err != nil {
		_ = os.Remove(dir)
		return &cgroup{}
	}
	return &cgroup{dir: dir, parent: parent, pid: pid}
}

func (c *cgroup) reset() {
	if c.dir != "" {
		_ = os.WriteFile(filepath.Join(c.dir, "memory.max_usage_in_bytes"), []byte("0"), 0o644)
	}
}

func (c *cgroup) peak() int64 {
	if c.dir == "" {
		return 0
	}
	data, err := os.ReadFile(filepath.Join(c.dir, "memory.max_usage_in_bytes"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}

func (c *cgroup) close() {
	if c.dir == "" {
		return
	}
	_ = os.WriteFile(filepath.Join(c.parent, "cgroup.procs"), []byte(c.pid), 0o644)
	for i := 0; i < 50; i++ {
		if os.Remove(c.dir) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
