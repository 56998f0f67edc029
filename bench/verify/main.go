// Command verify compares, in one run, fleetsafe's backup verification with
// what a user would run instead. First, backup_verify over checksummed
// tar.zst backups (checksum and a full read of every tar entry, sharing one
// read, on every core) against `sha256sum -c` over the same sidecars
// (checksum only). Then fleetsafe's structural check of a pg_dump
// custom-format file (every data block read and decompressed) against
// `pg_restore -f /dev/null`.
//
//	go run ./bench/verify -module build/library/backup_verify
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/bench/internal/measure"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

func main() {
	module := flag.String("module", "build/library/backup_verify", "the built module")
	dir := flag.String("dir", "", "work directory (default: a temporary one)")
	instances := flag.Int("instances", 8, "instances, one backup each")
	mib := flag.Int("mib", 256, "MiB of incompressible data per backup")
	rows := flag.Int("rows", 2_000_000, "rows in the database dumped for the pg_custom case")
	runs := flag.Int("runs", 3, "runs of each side")
	flag.Parse()
	if err := run(*module, *dir, *instances, *mib, *rows, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(module, dir string, instances, mib, rows, runs int) error {
	module, err := filepath.Abs(module)
	if err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fleetsafe-bench-verify-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	layout, err := generateBackups(dir, instances, mib)
	if err != nil {
		return err
	}
	warm := exec.Command("sh", "-c", "cat "+dir+"/backups/*/* > /dev/null")
	if err := warm.Run(); err != nil {
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

	dump, err := generateDump(dir, rows)
	if err != nil {
		return err
	}
	fi, _ := os.Stat(dump)
	var ourDump, pgRestore []measure.Sample
	for range runs {
		start := time.Now()
		f, err := os.Open(dump)
		if err != nil {
			return err
		}
		_, err = pgdump.Verify(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("verify dump: %w", err)
		}
		ourDump = append(ourDump, measure.Sample{Wall: time.Since(start)})
		s, out, err := measure.Run("pg_restore", "-f", "/dev/null", dump)
		if err != nil {
			return fmt.Errorf("pg_restore: %v: %s", err, out)
		}
		pgRestore = append(pgRestore, s)
	}
	od, pr := measure.Median(ourDump), measure.Median(pgRestore)
	fmt.Printf("pg_dump -Fc of %d rows, %d MiB\n", rows, fi.Size()>>20)
	fmt.Printf("  %-56s %9s\n", "fleetsafe structural check (every data block decompressed)", od.Wall.Round(time.Millisecond))
	fmt.Printf("  %-56s %9s\n", "pg_restore -f /dev/null", pr.Wall.Round(time.Millisecond))
	fmt.Printf("  ratio fleetsafe / pg_restore: %.2f\n", float64(od.Wall)/float64(pr.Wall))
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

// generateDump dumps a database of rows rows with the real pg_dump -Fc.
func generateDump(dir string, rows int) (string, error) {
	ctx := context.Background()
	pg := pgdump.Conn{}
	db, err := pg.Open(ctx, "postgres")
	if err != nil {
		return "", err
	}
	defer db.Close()
	name := "fleetsafe_bench_verify"
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
		return "", err
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	defer db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	conn, err := pg.Open(ctx, name)
	if err != nil {
		return "", err
	}
	_, err = conn.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE t (id int, label text, body text);
		INSERT INTO t SELECT g, 'row ' || g, md5(g::text) || md5((g*7)::text) FROM generate_series(1, %d) g`, rows))
	conn.Close()
	if err != nil {
		return "", err
	}
	dump := filepath.Join(dir, "bench.dump")
	return dump, pgdump.Dump(ctx, pg, name, dump)
}
