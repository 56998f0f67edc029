// Command recover times restores from regular backups, in one run.
//
// First, the demo's sandbox fleet (16 instances on 4 hosts, made by
// cmd/fleetsafe-sandbox with its nightly backups) after an rm -rf of every
// instance directory and a DROP DATABASE of every database: `fleetsafe
// recover --confirm` on the 4 hosts at once, as recover_fleet.yml runs
// them, timed until the last is back (goal: under one minute; the
// incident took 8 h 35 min).
//
// Then one instance of -mib MiB (half incompressible files in a tar.zst
// backup, half a database in a pg_dump custom-format backup) restored by
// `fleetsafe recover <name> --confirm` against the by-hand pipeline a
// user would run: `zstd -dc | tar -x` for the files, `tar -xzf` for the
// config, `createdb` and `pg_restore -j 2` for the database. The ratio is
// fleetsafe's wall time over the pipeline's; peak RSS of each side.
//
//	go run ./bench/recover -fleetsafe build/library/fleetsafe
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fleetsafe/fleetsafe/bench/internal/harness"
	"github.com/fleetsafe/fleetsafe/bench/internal/measure"
	"github.com/fleetsafe/fleetsafe/internal/fleetgen"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

func main() {
	bin := flag.String("fleetsafe", "build/library/fleetsafe", "the built multi-call binary (make build)")
	dir := flag.String("dir", "", "work directory (default: a temporary one)")
	mib := flag.Int("mib", 1024, "MiB of the big instance (half files, half database)")
	flag.Parse()
	if err := run(context.Background(), *bin, *dir, *mib); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// marker prefixes every database of this bench (the demo's is fsdemo).
const marker = "fsbenchrec"

func run(ctx context.Context, bin, dir string, mib int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	dir, cleanup, err := harness.WorkDir(dir, "fleetsafe-bench-recover-")
	if err != nil {
		return err
	}
	defer cleanup()
	defer func() { _ = fleetgen.DropDatabasesLike(context.Background(), pgdump.Conn{}, marker) }()
	if err := fleet(ctx, bin, filepath.Join(dir, "fleet")); err != nil {
		return err
	}
	return big(ctx, bin, filepath.Join(dir, "big"), mib)
}

// fleet times the recovery of the 16 sandbox instances.
func fleet(ctx context.Context, bin, root string) error {
	sandbox := filepath.Join(filepath.Dir(root), "sandbox")
	if out, err := exec.Command("go", "build", "-o", sandbox, "./cmd/fleetsafe-sandbox").CombinedOutput(); err != nil {
		return fmt.Errorf("build the sandbox: %v: %s", err, out)
	}
	if out, err := exec.Command(sandbox, "-root", root, "-marker", marker, "-hosts", "4", "-instances", "16").CombinedOutput(); err != nil {
		return fmt.Errorf("sandbox: %v: %s", err, out)
	}
	// The disaster: every instance directory and every database.
	if err := harness.Sh(fmt.Sprintf("rm -rf %[1]s/tracim-0*/etc/tracim/* %[1]s/tracim-0*/srv/tracim/* %[1]s/tracim-0*/log/tracim/*", root)); err != nil {
		return err
	}
	if err := fleetgen.DropDatabasesLike(ctx, pgdump.Conn{}, marker+"_"); err != nil {
		return err
	}
	var wg sync.WaitGroup
	samples := make([]measure.Sample, 4)
	errs := make([]error, 4)
	start := time.Now()
	for h := range 4 {
		host := filepath.Join(root, fmt.Sprintf("tracim-%02d", h+1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, out, err := measure.Run("env", "FLEETSAFE_SYSTEMD_DIR="+filepath.Join(host, "systemd"), bin, "recover", "--confirm",
				"--layout-file", filepath.Join(host, "layout.yml"), "--archive-dir", filepath.Join(host, "archives"))
			samples[h] = s
			if err != nil {
				errs[h] = fmt.Errorf("%s: %v: %s", host, err, out)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	var rss int64
	for h := range 4 {
		if errs[h] != nil {
			return errs[h]
		}
		rss = max(rss, samples[h].MaxRSS)
	}
	// Every database is back.
	db, err := pgdump.Conn{}.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_database WHERE strpos(datname, $1) = 1`, marker+"_").Scan(&n); err != nil {
		return err
	}
	if n != 16 {
		return fmt.Errorf("%d of 16 databases restored", n)
	}
	fmt.Printf("recover 16 sandbox instances (4 hosts at once, fleetsafe recover --confirm): %.1f s (goal < 60 s), peak RSS %s per host\n",
		wall.Seconds(), measure.RSS(rss))
	return nil
}

// big times one instance of mib MiB: fleetsafe against the pipeline.
func big(ctx context.Context, bin, root string, mib int) error {
	f, err := fleetgen.Generate(ctx, fleetgen.Spec{Root: root, App: "tracim", DBPrefix: marker + "_big_", Names: []string{"big"},
		DB: true, PG: pgdump.Conn{}, Backups: true})
	if err != nil {
		return err
	}
	data := f.Path("data", "big")
	buf := make([]byte, 16<<20)
	for i := range mib / 2 / 16 {
		_, _ = rand.Read(buf)
		if err := os.WriteFile(filepath.Join(data, "depot", "a1", fmt.Sprintf("big-%03d.bin", i)), buf, 0o640); err != nil {
			return err
		}
	}
	db, err := f.PG.Open(ctx, f.Database("big"))
	if err != nil {
		return err
	}
	// 1 KiB of random bytes a row.
	_, err = db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO public.content (label, body)
		SELECT 'big-' || g, (SELECT decode(string_agg(md5(random()::text || g || i), ''), 'hex') FROM generate_series(1, 64) i)
		FROM generate_series(1, %d) g`, mib/2*1024))
	db.Close()
	if err != nil {
		return err
	}
	files, err := f.WriteBackups(ctx, "big", time.Now().Add(-time.Hour))
	if err != nil {
		return err
	}
	cfg := f.Path("config", "big")
	disaster := func() error {
		if err := os.RemoveAll(filepath.Dir(data)); err != nil {
			return err
		}
		if err := os.RemoveAll(cfg); err != nil {
			return err
		}
		return fleetgen.DropDatabasesLike(ctx, f.PG, f.Database("big"))
	}
	var total int64
	for _, p := range files {
		if st, err := os.Stat(p); err == nil {
			total += st.Size()
		}
	}
	if err := disaster(); err != nil {
		return err
	}
	// Each side starts from the same state: the previous side's writes
	// (files, WAL, dirty buffers) on disk, the backups in the page cache.
	settle := func() {
		_ = harness.Sh("psql -h /var/run/postgresql -d postgres -qc CHECKPOINT; sync; cat " + strings.Join(values(files), " ") + " >/dev/null")
	}
	settle()
	fs, out, err := measure.Run("env", "FLEETSAFE_SYSTEMD_DIR="+f.SystemdDir, bin, "recover", "big", "--confirm",
		"--layout-file", f.LayoutFile)
	if err != nil {
		return fmt.Errorf("fleetsafe recover big: %v: %s", err, out)
	}
	if err := disaster(); err != nil {
		return err
	}
	script := fmt.Sprintf("mkdir -p %[1]q && zstd -dc %[2]q | tar -C %[1]q -x && tar -C %[3]q -xzf %[4]q && createdb -h /var/run/postgresql %[5]q && pg_restore -h /var/run/postgresql -j 2 -d %[5]q %[6]q",
		filepath.Dir(data), files["data"], filepath.Dir(cfg), files["config"], f.Database("big"), files["database"])
	settle()
	hand, out, err := measure.Run("sh", "-c", script)
	if err != nil {
		return fmt.Errorf("by hand: %v: %s", err, out)
	}
	fmt.Printf("recover one instance of %d MiB (backups %d MiB): fleetsafe %.1f s (peak RSS %s), by hand (zstd -dc | tar -x, pg_restore -j 2) %.1f s (peak RSS %s): ratio %.2f\n",
		mib, total>>20, fs.Wall.Seconds(), measure.RSS(fs.MaxRSS), hand.Wall.Seconds(), measure.RSS(hand.MaxRSS), fs.Wall.Seconds()/hand.Wall.Seconds())
	return nil
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
