// Command softdelete compares, in one run, fleetsafe's soft delete of a
// generated instance with what a careful operator would do by hand:
// `tar -cf - | zstd -T0 -3`, then `zstd -t`, then `sha256sum` of every file.
// fleetsafe does more (a manifest, database dumps, a read-back verification
// of every checksum, a tombstone, a quarantine), so a ratio at or below 1
// means the extra safety costs no time.
//
// Three shapes run in one invocation, each side measured three times,
// interleaved, medians reported: large files (256 MiB incompressible +
// 5,000 small files), many small files (128 MiB + 8,000 small files), and
// 200,000 small files, whose peak RSS shows that memory stays flat
// whatever the file count. Two more shapes, not in the default set, give
// each of the 200,000 files a user.* extended attribute: "lossy" deletes
// with accept_losses: [xattr] (every file an accepted loss, as every file
// of a RHEL host carries an SELinux label), "refused" without it (the
// module's refusal, timed; no pipeline to compare with).
//
//	go run ./bench/softdelete -module build/library/instance_soft_delete
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

	"golang.org/x/sys/unix"

	"github.com/fleetsafe/fleetsafe/bench/internal/measure"
)

func main() {
	module := flag.String("module", "build/library/instance_soft_delete", "the built module")
	dir := flag.String("dir", "", "work directory (default: a temporary one)")
	names := flag.String("cases", "large,small,many", "comma-separated cases: large, small, many, lossy, refused")
	runs := flag.Int("runs", 3, "runs of each side")
	flag.Parse()
	for _, name := range strings.Split(*names, ",") {
		c, ok := cases[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown case %q (large, small, many, lossy, refused)\n", name)
			os.Exit(2)
		}
		if err := run(*module, *dir, c, *runs); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
}

// shape is an instance shape measured.
type shape struct {
	bigMiB, small int
	// xattr gives each small file a user.* extended attribute; accept
	// accepts them as losses (else the deletion is refused).
	xattr, accept bool
}

// cases are the instance shapes measured.
var cases = map[string]shape{
	"large":   {bigMiB: 256, small: 5000},
	"small":   {bigMiB: 128, small: 8000},
	"many":    {small: 200000},
	"lossy":   {small: 200000, xattr: true, accept: true},
	"refused": {small: 200000, xattr: true},
}

func run(module, dir string, c shape, runs int) error {
	bigMiB, small := c.bigMiB, c.small
	module, err := filepath.Abs(module)
	if err != nil {
		return err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fleetsafe-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else {
		if dir, err = os.MkdirTemp(dir, "case-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	parent := filepath.Join(dir, "srv", "bench")
	inst := filepath.Join(parent, "inst")
	if err := generate(inst, bigMiB, small, c.xattr); err != nil {
		return err
	}
	layout := filepath.Join(dir, "layout.yml")
	if err := os.WriteFile(layout, []byte("app: bench\ncomponents:\n  - name: data\n    type: dir\n    path: "+parent+"/{name}\n"), 0o644); err != nil {
		return err
	}
	// Warm the page cache once so both sides read from memory alike.
	if err := exec.Command("sh", "-c", "find "+inst+" -type f -print0 | xargs -0 cat > /dev/null").Run(); err != nil {
		return err
	}

	var ours, theirs []measure.Sample
	for i := range runs {
		archives := filepath.Join(dir, fmt.Sprintf("archives-%d", i))
		args := filepath.Join(dir, "args.json")
		a := map[string]any{"layout_file": layout, "name": "inst", "archive_dir": archives, "reason": "benchmark"}
		if c.accept {
			a["accept_losses"] = []string{"xattr"}
		}
		data, _ := json.Marshal(a)
		if err := os.WriteFile(args, data, 0o600); err != nil {
			return err
		}
		s, out, err := measure.Run(module, args)
		if c.xattr && !c.accept {
			// The refusal: timed, its message's size shown.
			if err == nil || !strings.Contains(out, "refusing to delete") {
				return fmt.Errorf("fleetsafe: expected a refusal: %v: %.500s", err, out)
			}
			ours = append(ours, s)
			fmt.Printf("  refusal: %d bytes of module output\n", len(out))
			continue
		}
		if err != nil {
			return fmt.Errorf("fleetsafe: %v: %s", err, out)
		}
		ours = append(ours, s)
		if c.accept {
			fmt.Printf("  accepted: %d bytes of module output\n", len(out))
		}
		// Put the instance back from quarantine for the next run.
		trash, _ := filepath.Glob(filepath.Join(parent, ".fleetsafe-trash", "*", "inst"))
		if len(trash) != 1 {
			return fmt.Errorf("expected one quarantined copy, found %d", len(trash))
		}
		if err := os.Rename(trash[0], inst); err != nil {
			return err
		}
		os.RemoveAll(filepath.Join(parent, ".fleetsafe-trash"))
		os.RemoveAll(archives)

		out2 := filepath.Join(dir, "manual.tar.zst")
		script := fmt.Sprintf("set -e; tar -C %s -cf - inst | zstd -q -T0 -3 -f -o %s; zstd -q -t %s; cd %s && find inst -type f -print0 | xargs -0 sha256sum > /dev/null",
			parent, out2, out2, parent)
		s, out, err = measure.Run("sh", "-c", script)
		if err != nil {
			return fmt.Errorf("pipeline: %v: %s", err, out)
		}
		theirs = append(theirs, s)
		os.Remove(out2)
	}
	if c.xattr && !c.accept {
		mo := measure.Median(ours)
		fmt.Printf("instance: %d small text files each with a user.* attribute (refused), page cache warm\n", small)
		fmt.Printf("  %-60s %9s  peak RSS %s\n", "fleetsafe soft delete, refused", mo.Wall.Round(time.Millisecond), measure.RSS(mo.MaxRSS))
		return nil
	}
	mo, mt := measure.Median(ours), measure.Median(theirs)
	name := shapeName(bigMiB, small)
	if c.xattr {
		name = "lossy: each small file with a user.* attribute, accept_losses: [xattr]"
	}
	fmt.Printf("instance: %d MiB incompressible + %d small text files (%s), page cache warm\n", bigMiB, small, name)
	fmt.Printf("  %-60s %9s  peak RSS %s\n", "fleetsafe soft delete (archive+verify+tombstone+quarantine)", mo.Wall.Round(time.Millisecond), measure.RSS(mo.MaxRSS))
	fmt.Printf("  %-60s %9s  peak RSS %s (of the shell)\n", "tar | zstd -T0 -3; zstd -t; sha256sum every file", mt.Wall.Round(time.Millisecond), measure.RSS(mt.MaxRSS))
	fmt.Printf("  ratio fleetsafe / pipeline: %.2f (runs: %d each, interleaved)\n", float64(mo.Wall)/float64(mt.Wall), runs)
	return nil
}

func generate(inst string, bigMiB, small int, xattr bool) error {
	if err := os.MkdirAll(filepath.Join(inst, "text"), 0o755); err != nil {
		return err
	}
	buf := make([]byte, 64<<20)
	for i := 0; i*64 < bigMiB; i++ {
		n := min(64, bigMiB-i*64) << 20
		if _, err := rand.Read(buf[:n]); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(inst, fmt.Sprintf("blob-%02d.bin", i)), buf[:n], 0o644); err != nil {
			return err
		}
	}
	for i := range small {
		sub := filepath.Join(inst, "text", fmt.Sprintf("d%02d", i%50))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		line := fmt.Sprintf("document %d: the quick brown fox jumps over the lazy dog\n", i)
		p := filepath.Join(sub, fmt.Sprintf("f%05d.txt", i))
		if err := os.WriteFile(p, []byte(strings.Repeat(line, 30)), 0o644); err != nil {
			return err
		}
		if xattr {
			if err := unix.Setxattr(p, "user.bench", []byte("1"), 0); err != nil {
				return fmt.Errorf("set a user.* attribute on %s: %w", p, err)
			}
		}
	}
	return nil
}

func shapeName(bigMiB, small int) string {
	for name, c := range cases {
		if c.bigMiB == bigMiB && c.small == small && !c.xattr {
			return name
		}
	}
	return "custom"
}
