// Command verify compares, in one run, fleetsafe's backup verification with
// what a user would run instead: backup_verify over checksummed tar.zst
// backups (checksum and a full read of every tar entry, sharing one read,
// on every core) against `sha256sum -c` over the same sidecars (checksum
// only). The structural check of a pg_dump custom-format file against
// `pg_restore -f /dev/null` is bench/pgcustom's.
//
//	go run ./bench/verify -module build/library/backup_verify
package main

import (
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/bench/internal/harness"
	"github.com/fleetsafe/fleetsafe/bench/internal/measure"
)

func main() {
	module := flag.String("module", "build/library/backup_verify", "the built module")
	dir := flag.String("dir", "", "work directory (default: a temporary one)")
	instances := flag.Int("instances", 8, "instances, one backup each")
	mib := flag.Int("mib", 256, "MiB of incompressible data per backup")
	runs := flag.Int("runs", 3, "runs of each side")
	flag.Parse()
	if err := run(*module, *dir, *instances, *mib, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(module, dir string, instances, mib, runs int) error {
	module, err := filepath.Abs(module)
	if err != nil {
		return err
	}
	dir, cleanup, err := harness.WorkDir(dir, "fleetsafe-bench-verify-")
	if err != nil {
		return err
	}
	defer cleanup()
	layout, err := generateBackups(dir, instances, mib)
	if err != nil {
		return err
	}
	if err := harness.Sh("cat " + dir + "/backups/*/* > /dev/null"); err != nil {
		return err
	}
	args := filepath.Join(dir, "args.json")
	data, _ := json.Marshal(map[string]any{"layout_file": layout, "state_file": filepath.Join(dir, "state.json")})
	if err := os.WriteFile(args, data, 0o600); err != nil {
		return err
	}
	var ours, theirs []measure.Sample
	for range runs {
		s, out, err := measure.Run(module, args)
		if err != nil {
			return fmt.Errorf("backup_verify: %v: %s", err, out)
		}
		if !strings.Contains(out, `"failed":false`) {
			return fmt.Errorf("backup_verify did not pass: %s", out)
		}
		ours = append(ours, s)
		s, out, err = measure.Run("sh", "-c", "cd "+dir+"/backups && for d in */; do (cd $d && sha256sum -c --quiet *.sha256) || exit 1; done")
		if err != nil {
			return fmt.Errorf("sha256sum -c: %v: %s", err, out)
		}
		theirs = append(theirs, s)
	}
	total := instances * mib
	mo, mt := measure.Median(ours), measure.Median(theirs)
	fmt.Printf("%d checksummed tar.zst backups, %d MiB in all, page cache warm, runs: %d each, interleaved\n", instances, total, runs)
	fmt.Printf("  %-56s %9s %6.0f MiB/s  peak RSS %s\n", "backup_verify (checksum + every tar entry, one read)", mo.Wall.Round(time.Millisecond), float64(total)/mo.Wall.Seconds(), measure.RSS(mo.MaxRSS))
	fmt.Printf("  %-56s %9s %6.0f MiB/s  peak RSS %s\n", "sha256sum -c (checksum only)", mt.Wall.Round(time.Millisecond), float64(total)/mt.Wall.Seconds(), measure.RSS(mt.MaxRSS))
	fmt.Printf("  ratio backup_verify / sha256sum -c: %.2f\n", float64(mo.Wall)/float64(mt.Wall))
	return nil
}

// generateBackups writes one tar.zst backup of random data per instance,
// each with its sha256sum sidecar, made with the real tar, zstd and
// sha256sum, and a layout whose rule checks them.
func generateBackups(dir string, instances, mib int) (string, error) {
	buf := make([]byte, 64<<20)
	for i := range instances {
		name := fmt.Sprintf("inst%02d", i)
		inst := filepath.Join(dir, "srv", name)
		bdir := filepath.Join(dir, "backups", name)
		for _, d := range []string{inst, bdir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return "", err
			}
		}
		blob, err := os.Create(filepath.Join(inst, "blob.bin"))
		if err != nil {
			return "", err
		}
		for left := mib << 20; left > 0; left -= len(buf) {
			n := min(left, len(buf))
			if _, err := rand.Read(buf[:n]); err != nil {
				return "", err
			}
			if _, err := blob.Write(buf[:n]); err != nil {
				return "", err
			}
		}
		if err := blob.Close(); err != nil {
			return "", err
		}
		script := fmt.Sprintf("tar -C %s -cf - . | zstd -q -1 -T0 -o %s/data-1.tar.zst && cd %s && sha256sum data-1.tar.zst > data-1.tar.zst.sha256 && rm %s/blob.bin",
			inst, bdir, bdir, inst)
		if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
			return "", fmt.Errorf("make backup: %v: %s", err, out)
		}
	}
	layout := filepath.Join(dir, "layout.yml")
	text := fmt.Sprintf("app: bench\ncomponents:\n  - name: data\n    type: dir\n    path: %s/srv/{name}\nbackups:\n  - component: data\n    path: %s/backups/{name}/data-*.tar.zst\n    format: tar_zst\n    checksum: sha256_sidecar\n", dir, dir)
	return layout, os.WriteFile(layout, []byte(text), 0o644)
}
