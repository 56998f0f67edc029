// Command s3 measures issue 13's speed goals: fleetsafe's soft delete of
// one instance (default 1 GiB of incompressible files; no database, so
// that the four targets differ only by where the archive goes) to
//
//   - a local archive directory (archive_dir),
//   - the local S3 server of scripts/s3-up.sh (archive_store: s3://…, a
//     fresh bucket with Object Lock enabled, as a deployment would have),
//   - the local directory with encrypt_to (an age X25519 recipient made
//     for the run),
//   - the S3 server with encrypt_to,
//
// in one run, interleaved, -runs times each (medians), the instance put
// back from quarantine after each run so that every run soft-deletes the
// same bytes from a warm page cache. It prints wall time and peak RSS
// (GNU time) of each, its CPU time (user+sys) and the S3 server's CPU time
// meanwhile (the server runs on the same machine: its work is part of the
// wall time), the ratios S3/local and encrypted/plain, and the load
// average before and after.
//
//	eval "$(bash scripts/s3-up.sh)"   # or: make s3
//	go run ./bench/s3 -module build/library/instance_soft_delete -mib 1024
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/fleetsafe/fleetsafe/bench/internal/harness"
	"github.com/fleetsafe/fleetsafe/bench/internal/measure"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

func main() {
	module := flag.String("module", "build/library/instance_soft_delete", "the built module")
	dir := flag.String("dir", "", "work directory (default: a temporary one)")
	mib := flag.Int("mib", 1024, "instance size in MiB (incompressible files of up to 64 MiB)")
	runs := flag.Int("runs", 3, "runs of each target")
	flag.Parse()
	if err := run(*module, *dir, *mib, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// target is one place the soft delete archives to.
type target struct {
	name    string
	s3      bool
	encrypt bool
	samples []measure.Sample
	cpu     []time.Duration // the module's user+sys, per run
	server  []time.Duration // the S3 server's user+sys during each run
}

func run(module, dir string, mib, runs int) error {
	module, err := filepath.Abs(module)
	if err != nil {
		return err
	}
	dir, cleanup, err := harness.WorkDir(dir, "fleetsafe-bench-s3-")
	if err != nil {
		return err
	}
	defer cleanup()
	env, err := s3Env(s3test.EnvFile())
	if err != nil {
		return fmt.Errorf("the S3 server's settings (run scripts/s3-up.sh, or make s3): %w", err)
	}
	client, err := s3Client(env)
	if err != nil {
		return err
	}
	bucket, err := newBucket(client)
	if err != nil {
		return err
	}
	defer s3test.Empty(client, bucket)

	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	recipient := id.Recipient().String()

	parent := filepath.Join(dir, "srv", "bench")
	inst := filepath.Join(parent, "inst")
	if err := generate(inst, mib); err != nil {
		return err
	}
	layout := filepath.Join(dir, "layout.yml")
	if err := os.WriteFile(layout, []byte("app: bench\ncomponents:\n  - name: data\n    type: dir\n    path: "+parent+"/{name}\n"), 0o644); err != nil {
		return err
	}
	if err := harness.Sh("find " + inst + " -type f -print0 | xargs -0 cat > /dev/null"); err != nil {
		return err
	}

	targets := []*target{
		{name: "local directory"},
		{name: "S3 server", s3: true},
		{name: "local directory, encrypt_to", encrypt: true},
		{name: "S3 server, encrypt_to", s3: true, encrypt: true},
	}
	serverPID := readPID(filepath.Join(filepath.Dir(s3test.EnvFile()), "pid"))
	loadBefore := loadAvg()
	for i := range runs {
		for _, t := range targets {
			params := map[string]any{"layout_file": layout, "name": "inst", "reason": "benchmark"}
			archives := filepath.Join(dir, fmt.Sprintf("archives-%d", i))
			if t.s3 {
				params["archive_store"] = fmt.Sprintf("s3://%s/run-%d-%t", bucket, i, t.encrypt)
				params["s3_endpoint"] = env["FLEETSAFE_S3_ENDPOINT"]
				params["s3_region"] = env["AWS_REGION"]
				params["s3_access_key"] = env["AWS_ACCESS_KEY_ID"]
				params["s3_secret_key"] = env["AWS_SECRET_ACCESS_KEY"]
				params["s3_path_style"] = true
			} else {
				params["archive_dir"] = archives
			}
			if t.encrypt {
				params["encrypt_to"] = []string{recipient}
			}
			args := filepath.Join(dir, "args.json")
			data, _ := json.Marshal(params)
			if err := os.WriteFile(args, data, 0o600); err != nil {
				return err
			}
			cpu0, srv0 := childCPU(), serverCPU(serverPID)
			s, out, err := measure.Run(module, args)
			t.cpu = append(t.cpu, childCPU()-cpu0)
			t.server = append(t.server, serverCPU(serverPID)-srv0)
			if err != nil {
				return fmt.Errorf("%s: %v: %s", t.name, err, harness.Tail(out, 20))
			}
			if !strings.Contains(out, `"changed": true`) && !strings.Contains(out, `"changed":true`) {
				return fmt.Errorf("%s: the module did not report a change: %s", t.name, harness.Tail(out, 20))
			}
			t.samples = append(t.samples, s)
			if err := putBack(parent, inst); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			os.RemoveAll(archives)
			os.Remove(args)
		}
	}
	loadAfter := loadAvg()

	med := map[*target]measure.Sample{}
	fmt.Printf("instance: %d MiB of incompressible files, page cache warm; %d runs of each target, interleaved, medians\n", mib, runs)
	for _, t := range targets {
		m := measure.Median(t.samples)
		med[t] = m
		fmt.Printf("  %-44s %9s  peak RSS %-7s  cpu %s (S3 server %s)\n", "soft delete to "+t.name, m.Wall.Round(time.Millisecond),
			measure.RSS(m.MaxRSS), medianDur(t.cpu).Round(time.Millisecond), medianDur(t.server).Round(time.Millisecond))
	}
	ratio := func(a, b *target) float64 { return float64(med[a].Wall) / float64(med[b].Wall) }
	fmt.Printf("  ratio S3/local: %.2f plain, %.2f encrypted (goal <= 1.3, peak RSS <= 64 MiB)\n", ratio(targets[1], targets[0]), ratio(targets[3], targets[2]))
	fmt.Printf("  ratio encrypted/plain: %.2f local, %.2f S3 (goal <= 1.15)\n", ratio(targets[2], targets[0]), ratio(targets[3], targets[1]))
	cpu := func(a, b *target) float64 { return float64(medianDur(a.cpu)) / float64(medianDur(b.cpu)) }
	fmt.Printf("  module CPU ratio (the S3 server's CPU left out): S3/local %.2f plain, %.2f encrypted; encrypted/plain %.2f local, %.2f S3\n",
		cpu(targets[1], targets[0]), cpu(targets[3], targets[2]), cpu(targets[2], targets[0]), cpu(targets[3], targets[1]))
	fmt.Printf("  before: %s; after: %s\n", loadBefore, loadAfter)
	return nil
}

// putBack moves the quarantined instance back, for the next run.
func putBack(parent, inst string) error {
	trash, _ := filepath.Glob(filepath.Join(parent, ".fleetsafe-trash", "*", "inst"))
	if len(trash) != 1 {
		return fmt.Errorf("expected one quarantined copy, found %d", len(trash))
	}
	if err := os.Rename(trash[0], inst); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(parent, ".fleetsafe-trash"))
}

// s3Env reads the KEY=value (or export KEY=value) lines of s3-up.sh's env
// file.
func s3Env(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = strings.Trim(v, `'"`)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, k := range []string{"FLEETSAFE_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if env[k] == "" {
			return nil, fmt.Errorf("%s: no %s", path, k)
		}
	}
	if env["AWS_REGION"] == "" {
		env["AWS_REGION"] = "us-east-1"
	}
	return env, nil
}

func s3Client(env map[string]string) (*minio.Client, error) {
	ep := env["FLEETSAFE_S3_ENDPOINT"]
	host := strings.TrimPrefix(strings.TrimPrefix(ep, "http://"), "https://")
	return minio.New(host, &minio.Options{Creds: credentials.NewStaticV4(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], ""),
		Secure: strings.HasPrefix(ep, "https://"), Region: env["AWS_REGION"], BucketLookup: minio.BucketLookupPath})
}

// newBucket makes a fresh bucket with Object Lock (and so versioning).
func newBucket(c *minio.Client) (string, error) {
	var b [6]byte
	rand.Read(b[:])
	name := "fleetsafe-bench-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		return "", fmt.Errorf("create bucket %s: %w", name, err)
	}
	return name, nil
}

func generate(inst string, mib int) error {
	if err := os.MkdirAll(inst, 0o755); err != nil {
		return err
	}
	buf := make([]byte, 64<<20)
	for i := 0; i*64 < mib; i++ {
		n := min(64, mib-i*64) << 20
		if _, err := rand.Read(buf[:n]); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(inst, fmt.Sprintf("blob-%02d.bin", i)), buf[:n], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// childCPU returns the user+sys time of this process's waited-for
// descendants (GNU time and the module it runs).
func childCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU returns the user+sys time of process pid (the S3 server), 0
// when unknown.
func serverCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100 // USER_HZ
}

func readPID(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

func medianDur(d []time.Duration) time.Duration {
	c := append([]time.Duration(nil), d...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[len(c)/2]
}

func loadAvg() string {
	out, err := exec.Command("uptime").Output()
	if err != nil {
		return "unknown"
	}
	s := strings.TrimSpace(string(out))
	if i := strings.Index(s, "load average"); i >= 0 {
		return s[i:]
	}
	return s
}
