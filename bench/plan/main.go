// Command plan measures delete_instance.yml's fleet-wide plan at scale:
// HOSTS inventory hosts over a real SSH connection (a private sshd on the
// loopback, scripts/sshd-up.sh, one control master per host as with real
// hosts, each opened by the run), against one ansible.builtin.ping task
// over the same inventory and forks. The plan is the whole playbook in
// check mode: it looks the name up on every host, counts, fingerprints,
// and runs the soft delete's check mode where the name matched.
//
// Each host has its own binary cache (fleetsafe_cache_dir), as separate
// machines do: "caches filled" is every job after the first with a given
// collection version; "caches empty" (-cold) is the first job after an
// upgrade, which copies the binary to every host. Also timed (-limited):
// the plan with a limit of one host, where every other host is looked up
// through that host's delegated loop.
//
// The cases run interleaved, -runs times (medians), with the one-minute
// load average before and after each run: the machine may be shared.
//
//	go run ./bench/plan -hosts 200 -forks 5
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/bench/internal/harness"
	"github.com/fleetsafe/fleetsafe/bench/internal/measure"
)

func main() {
	hosts := flag.Int("hosts", 200, "inventory hosts (all on the loopback sshd)")
	forks := flag.Int("forks", 5, "ansible forks, the same for every run (AWX's default, 0, is Ansible's 5)")
	runs := flag.Int("runs", 1, "interleaved runs of each case, the median is reported")
	limited := flag.Bool("limited", true, "also time the plan with a limit of one host")
	cold := flag.Bool("cold", true, "also time the plan with every host's binary cache empty")
	pipelined := flag.Bool("pipelining", true, "also time ping with ansible's pipelining on")
	repo := flag.String("repo", ".", "the repository (playbooks, ansible.cfg, build/collections)")
	dir := flag.String("dir", "", "work directory (inventory, host roots), kept; default a temporary one, removed")
	flag.Parse()
	if err := run(*repo, *dir, *hosts, *forks, *runs, *limited, *cold, *pipelined); err != nil {
		fmt.Fprintln(os.Stderr, "bench/plan:", err)
		os.Exit(1)
	}
}

type benchCase struct {
	name  string
	args  []string
	want  string
	empty bool     // empty every host's binary cache first
	env   []string // KEY=value set for this case's run
}

func run(repo, dir string, hosts, forks, runs int, limited, cold, pipelined bool) error {
	repo, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	env, err := harness.SSHDUp(repo)
	if err != nil {
		return err
	}
	dir, cleanup, err := harness.WorkDir(dir, "fleetsafe-bench-plan-")
	if err != nil {
		return err
	}
	defer cleanup()
	cp := filepath.Join(dir, "cm")
	if err := os.MkdirAll(cp, 0o700); err != nil {
		return err
	}
	defer harness.CloseMasters(cp, hosts)
	inv, err := fleet(dir, env, cp, hosts)
	if err != nil {
		return err
	}
	ping := filepath.Join(dir, "ping.yml")
	if err := os.WriteFile(ping, []byte("- name: Ping\n  hosts: all\n  gather_facts: false\n  tasks:\n    - name: Ping\n      ansible.builtin.ping:\n"), 0o644); err != nil {
		return err
	}
	playbook := filepath.Join(repo, "playbooks", "delete_instance.yml")
	target := harness.HostName(hosts/2 + 1)
	plan := []string{"--check", "-e", "instance_name=target", "-e", "reason=bench", playbook}
	cases := []benchCase{{name: "ping (one ansible.builtin.ping task)", args: []string{ping}, want: "ok=1 "}}
	if cold {
		// Before "caches filled": its first run fills them.
		cases = append(cases, benchCase{name: "plan, caches empty", args: plan, want: "would be archived into", empty: true})
	}
	cases = append(cases, benchCase{name: "plan, caches filled", args: plan, want: "would be archived into"})
	if pipelined {
		// Not the reference: ansible's default is no pipelining, where a
		// Python module costs six SSH round trips per host (home directory,
		// mkdir, sftp, chmod, run, rm) against one here.
		cases = append(cases, benchCase{name: "ping, pipelining on", args: []string{ping}, want: "ok=1 ", env: []string{"ANSIBLE_PIPELINING=True"}})
	}
	if limited {
		cases = append(cases, benchCase{name: "plan, caches filled, --limit " + target, args: append([]string{"--limit", target}, plan...), want: "would be archived into"})
	}
	fmt.Printf("delete_instance.yml's plan at %d inventory hosts over loopback SSH (one control master per host, opened by each run), forks %d, %d interleaved run(s) of each, medians\n",
		hosts, forks, runs)
	if !cold {
		// Fill every host's cache once, untimed, so that the first "caches
		// filled" run is one.
		if _, out, err := playbookRun(inv, forks, plan, nil); err != nil {
			return fmt.Errorf("filling the caches: %w\n%s", err, harness.Tail(out, 40))
		}
	}
	samples := make([][]measure.Sample, len(cases))
	loads := make([][]string, len(cases))
	for i := 0; i < runs; i++ {
		for j, c := range cases {
			harness.CloseMasters(cp, hosts) // every run opens its connections
			if c.empty {
				if err := emptyCaches(dir, hosts); err != nil {
					return err
				}
			}
			before := loadAvg()
			s, out, err := playbookRun(inv, forks, c.args, c.env)
			if err != nil {
				return fmt.Errorf("%s: %w\n%s", c.name, err, harness.Tail(out, 40))
			}
			if !strings.Contains(out, c.want) {
				return fmt.Errorf("%s: output lacks %q\n%s", c.name, c.want, harness.Tail(out, 40))
			}
			samples[j] = append(samples[j], s)
			loads[j] = append(loads[j], before+"→"+loadAvg())
			fmt.Printf("    run %d  %-44s %8.1f s  load %s\n", i+1, c.name, s.Wall.Seconds(), before+"→"+loadAvg())
		}
	}
	var base time.Duration
	for j, c := range cases {
		m := measure.Median(samples[j])
		if base == 0 {
			base = m.Wall
		}
		fmt.Printf("  %-44s %8.1f s  %5.2fx ping  controller RSS %s  load %s\n", c.name, m.Wall.Seconds(), float64(m.Wall)/float64(base),
			measure.RSS(m.MaxRSS), strings.Join(loads[j], ", "))
	}
	return nil
}

func playbookRun(inv string, forks int, args, env []string) (measure.Sample, string, error) {
	argv := append([]string{"ansible-playbook", "-i", inv, "-f", fmt.Sprint(forks)}, args...)
	if len(env) > 0 {
		argv = append(append([]string{"env"}, env...), argv...)
	}
	return measure.Run(argv...)
}

// emptyCaches removes every host's binary cache.
func emptyCaches(dir string, hosts int) error {
	for i := 1; i <= hosts; i++ {
		if err := os.RemoveAll(filepath.Join(dir, harness.HostName(i), "cache")); err != nil {
			return err
		}
	}
	return nil
}

// loadAvg is the one-minute load average, or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// fleet writes one layout, root and binary cache per host, the instance
// "target" on one host only, and the inventory.
func fleet(dir string, env map[string]string, cp string, hosts int) (string, error) {
	var b strings.Builder
	b.WriteString("all:\n  vars:\n")
	fmt.Fprintf(&b, "    ansible_host: 127.0.0.1\n    ansible_port: %s\n    ansible_user: root\n", env["SSHD_PORT"])
	fmt.Fprintf(&b, "    ansible_ssh_private_key_file: %s/client_ed25519\n", env["SSHD_DIR"])
	fmt.Fprintf(&b, "    ansible_ssh_common_args: \"-o UserKnownHostsFile=%s/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes\"\n", env["SSHD_DIR"])
	// ping pays no interpreter discovery: the benchmark favours ping.
	b.WriteString("    ansible_python_interpreter: /usr/bin/python3\n  hosts:\n")
	for i := 1; i <= hosts; i++ {
		h := harness.HostName(i)
		root := filepath.Join(dir, h)
		layout := fmt.Sprintf("app: bench\ncomponents:\n  - name: config\n    type: dir\n    path: %s/etc/{name}\n  - name: data\n    type: dir\n    path: %s/srv/{name}/data\n", root, root)
		if err := os.MkdirAll(root, 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(root, "layout.yml"), []byte(layout), 0o644); err != nil {
			return "", err
		}
		if i == hosts/2+1 {
			for _, d := range []string{"etc/target", "srv/target/data"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					return "", err
				}
				if err := os.WriteFile(filepath.Join(root, d, "file"), []byte("x"), 0o644); err != nil {
					return "", err
				}
			}
		}
		fmt.Fprintf(&b, "    %s:\n      ansible_control_path: %s/%s\n      fleetsafe_layout_file: %s/layout.yml\n      fleetsafe_archive_dir: %s/archives\n      fleetsafe_cache_dir: %s/cache\n",
			h, cp, h, root, root, root)
	}
	path := filepath.Join(dir, "inventory.yml")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}
