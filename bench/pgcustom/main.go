// Command pgcustom compares, in one run, fleetsafe's structural check of a
// pg_dump custom-format file (every data block read and decompressed) with
// `pg_restore -f /dev/null`, on dumps of about 82 MiB made by the real
// pg_dump -Fc from databases this command creates: pgbench-like tables of
// random rows, first spread over several tables (the check inflates one
// table's data stream per core), then all in one table (one stream: no
// parallelism is possible, only the inflater's own speed counts).
//
//	go run ./bench/pgcustom
//
// Each side runs as its own process, so that its peak RSS is measured;
// runs are interleaved and the median of each side is reported.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fleetsafe/fleetsafe/bench/internal/harness"
	"github.com/fleetsafe/fleetsafe/bench/internal/measure"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

func main() {
	check := flag.String("check", "", "check this dump and exit (the measured child process)")
	dir := flag.String("dir", "", "work directory (default: a temporary one)")
	rows := flag.Int("rows", 2_000_000, "rows in all")
	tables := flag.Int("tables", 8, "tables the rows are spread over in the first case")
	runs := flag.Int("runs", 5, "runs of each side")
	cpuprofile := flag.String("cpuprofile", "", "with -check: write a CPU profile of the check to this file")
	niceFlag := flag.Int("nice", 0, "run both sides at this niceness, and this session's autogroup too (-20: ahead of the other jobs sharing the machine, nearly as on free cores; root only)")
	reuse := flag.Bool("reuse", false, "reuse the dumps a previous run left in -dir")
	flag.Parse()
	if *check != "" {
		if err := checkOne(*check, *cpuprofile); err != nil {
			fmt.Fprintln(os.Stderr, "check:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*dir, *rows, *tables, *runs, *reuse, *niceFlag); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func checkOne(file, cpuprofile string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if cpuprofile != "" {
		pf, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	sum, err := pgdump.Verify(f)
	if err != nil {
		return err
	}
	fmt.Printf("%d blocks, %d bytes of data\n", sum.DataBlocks, sum.DataBytes)
	return nil
}

func run(dir string, rows, tables, runs int, reuse bool, niceness int) error {
	var prefix []string
	if niceness != 0 {
		prefix = []string{"nice", "-n", fmt.Sprint(niceness)}
		// With autogroup scheduling (Linux's default), CPU is shared
		// between sessions first: a process's niceness counts only within
		// its session, and two threads get no more than one.
		if err := os.WriteFile("/proc/self/autogroup", []byte(fmt.Sprint(niceness)), 0); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("autogroup niceness: %w", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, cleanup, err := harness.WorkDir(dir, "fleetsafe-bench-pgcustom-")
	if err != nil {
		return err
	}
	defer cleanup()
	for _, n := range []int{tables, 1} {
		dump := filepath.Join(dir, fmt.Sprintf("bench-%d.dump", n))
		if _, err := os.Stat(dump); err != nil || !reuse {
			if dump, err = generateDump(dir, rows, n); err != nil {
				return err
			}
		}
		fi, err := os.Stat(dump)
		if err != nil {
			return err
		}
		var ours, theirs []measure.Sample
		var oursCPU, theirsCPU []time.Duration
		loadBefore := loadAvg()
		for range runs {
			s, cpu, out, err := runCPU(append(prefix, self, "-check", dump)...)
			if err != nil {
				return fmt.Errorf("fleetsafe check: %v: %s", err, out)
			}
			ours, oursCPU = append(ours, s), append(oursCPU, cpu)
			s, cpu, out, err = runCPU(append(prefix, "pg_restore", "-f", "/dev/null", dump)...)
			if err != nil {
				return fmt.Errorf("pg_restore: %v: %s", err, out)
			}
			theirs, theirsCPU = append(theirs, s), append(theirsCPU, cpu)
		}
		mo, mt := measure.Median(ours), measure.Median(theirs)
		co, ct := medianDur(oursCPU), medianDur(theirsCPU)
		fmt.Printf("pg_dump -Fc of %d random rows in %d table(s), %d MiB, page cache warm, runs: %d each, interleaved, niceness %d, load average %s before, %s after\n", rows, n, fi.Size()>>20, runs, niceness, loadBefore, loadAvg())
		fmt.Printf("  %-60s %9s  cpu %9s  peak RSS %s\n", "fleetsafe structural check (every data block decompressed)", mo.Wall.Round(time.Millisecond), co.Round(time.Millisecond), measure.RSS(mo.MaxRSS))
		fmt.Printf("  %-60s %9s  cpu %9s  peak RSS %s\n", "pg_restore -f /dev/null", mt.Wall.Round(time.Millisecond), ct.Round(time.Millisecond), measure.RSS(mt.MaxRSS))
		fmt.Printf("  ratio fleetsafe / pg_restore: wall %.2f, cpu (user+sys) %.2f\n", float64(mo.Wall)/float64(mt.Wall), float64(co)/float64(ct))
	}
	return nil
}

// runCPU is measure.Run with the CPU time (user+sys) the command used, from
// this process's children's rusage: the figure the other jobs sharing the
// machine do not inflate (wall time waits for a free core).
func runCPU(argv ...string) (measure.Sample, time.Duration, string, error) {
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before)
	s, out, err := measure.Run(argv...)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()) - time.Duration(before.Utime.Nano()+before.Stime.Nano())
	return s, cpu, out, err
}

func medianDur(d []time.Duration) time.Duration {
	c := slices.Clone(d)
	slices.Sort(c)
	return c[len(c)/2]
}

// loadAvg is the one-minute load average, or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// generateDump creates a database of rows random rows spread over tables
// pgbench-like tables, dumps it with the real pg_dump -Fc, drops it, and
// reads the dump once so the page cache is warm.
func generateDump(dir string, rows, tables int) (string, error) {
	ctx := context.Background()
	pg := pgdump.Conn{}
	db, err := pg.Open(ctx, "postgres")
	if err != nil {
		return "", err
	}
	defer db.Close()
	name := "fleetsafe_bench_pgcustom"
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
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
	defer conn.Close()
	per := rows / tables
	for i := range tables {
		q := fmt.Sprintf(`CREATE TABLE public.accounts_%d (aid int PRIMARY KEY, bid int, abalance int, filler text);
			INSERT INTO public.accounts_%d SELECT g, g / 100000 + 1, (random() * 1e6)::int, md5(random()::text) || md5(random()::text)
			FROM generate_series(1, %d) g`, i, i, per)
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return "", err
		}
	}
	dump := filepath.Join(dir, fmt.Sprintf("bench-%d.dump", tables))
	if err := pgdump.Dump(ctx, pg, name, dump); err != nil {
		return "", err
	}
	f, err := os.Open(dump)
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return dump, err
}
