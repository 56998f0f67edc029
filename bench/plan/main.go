// Command plan measures delete_instance.yml's fleet-wide plan at scale:
// HOSTS inventory hosts over a real SSH connection (a private sshd on the
// loopback, scripts/sshd-up.sh, one control master per host as with real
// hosts), against one ansible.builtin.ping task over the same inventory
// and forks. The plan is the whole playbook in check mode: it looks the
// name up on every host, counts, fingerprints, and runs the soft delete's
// check mode where the name matched. Also timed: the same plan with a
// limit of one host, where every other host is looked up through that
// host's delegated loop.
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
	runs := flag.Int("runs", 1, "runs of each, the median is reported")
	limited := flag.Bool("limited", true, "also time the plan with a limit of one host")
	repo := flag.String("repo", ".", "the repository (playbooks, ansible.cfg, build/collections)")
	flag.Parse()
	if err := run(*repo, *hosts, *forks, *runs, *limited); err != nil {
		fmt.Fprintln(os.Stderr, "bench/plan:", err)
		os.Exit(1)
	}
}

func run(repo string, hosts, forks, runs int, limited bool) error {
	repo, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	env, err := harness.SSHDUp(repo)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "fleetsafe-bench-plan-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cp := filepath.Join(dir, "cm")
	if err := os.Mkdir(cp, 0o700); err != nil {
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
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"ping (one ansible.builtin.ping task)", []string{ping}, fmt.Sprintf("ok=1 ")},
		{"plan (delete_instance.yml --check)", plan, "would be archived into"},
	}
	if limited {
		cases = append(cases, struct {
			name string
			args []string
			want string
		}{"plan, --limit " + target, append([]string{"--limit", target}, plan...), "would be archived into"})
	}
	fmt.Printf("delete_instance.yml's plan at %d inventory hosts over loopback SSH (one control master per host), forks %d, median of %d run(s)\n",
		hosts, forks, runs)
	var base time.Duration
	for _, c := range cases {
		var samples []measure.Sample
		for i := 0; i < runs; i++ {
			harness.CloseMasters(cp, hosts) // every run opens its connections
			argv := append([]string{"ansible-playbook", "-i", inv, "-f", fmt.Sprint(forks)}, c.args...)
			s, out, err := measure.Run(argv...)
			if err != nil {
				return fmt.Errorf("%s: %w\n%s", c.name, err, harness.Tail(out, 40))
			}
			if !strings.Contains(out, c.want) {
				return fmt.Errorf("%s: output lacks %q\n%s", c.name, c.want, harness.Tail(out, 40))
			}
			samples = append(samples, s)
		}
		m := measure.Median(samples)
		if base == 0 {
			base = m.Wall
		}
		fmt.Printf("  %-40s %8.1f s  %5.2fx ping\n", c.name, m.Wall.Seconds(), float64(m.Wall)/float64(base))
	}
	return nil
}

// fleet writes one layout and root per host, the instance "target" on one
// host only, and the inventory.
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
		fmt.Fprintf(&b, "    %s:\n      ansible_control_path: %s/%s\n      fleetsafe_layout_file: %s/layout.yml\n      fleetsafe_archive_dir: %s/archives\n",
			h, cp, h, root, root)
	}
	path := filepath.Join(dir, "inventory.yml")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}
