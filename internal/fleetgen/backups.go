package fleetgen

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// BackupDir is where the generated backups of an instance go.
func (f *Fleet) BackupDir(name string) string { return filepath.Join(f.Root, "backups", name) }

// WriteBackups takes one night's backups of an instance with the real
// tools, as a cron job would: GNU tar with gzip for config, tar piped to
// zstd for data, pg_dump -Fc with a sha256sum sidecar for the database.
// Files are stamped and dated `when`. It returns the paths written.
func (f *Fleet) WriteBackups(ctx context.Context, name string, when time.Time) (map[string]string, error) {
	dir := f.BackupDir(name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	stamp := when.UTC().Format("20060102T150405")
	out := map[string]string{
		"config": filepath.Join(dir, "config-"+stamp+".tar.gz"),
		"data":   filepath.Join(dir, "data-"+stamp+".tar.zst"),
	}
	cfg := f.Path("config", name)
	data := f.Path("data", name)
	cmds := [][]string{
		{"tar", "-C", filepath.Dir(cfg), "-czf", out["config"], filepath.Base(cfg)},
		{"sh", "-c", fmt.Sprintf("tar -C %q -cf - %q | zstd -q -o %q", filepath.Dir(data), filepath.Base(data), out["data"])},
	}
	if f.DB {
		out["database"] = filepath.Join(dir, "db-"+stamp+".dump")
		cmds = append(cmds,
			[]string{"pg_dump", "--format=custom", "--file=" + out["database"], "--dbname=" + f.Database(name)},
			[]string{"sh", "-c", fmt.Sprintf("cd %q && sha256sum %q > %q", dir, filepath.Base(out["database"]), filepath.Base(out["database"])+".sha256")})
	}
	for _, c := range cmds {
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Env = f.PG.Env()
		if msg, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%v: %v: %s", c, err, msg)
		}
	}
	for _, p := range out {
		for _, q := range []string{p, p + ".sha256"} {
			if _, err := os.Stat(q); err == nil {
				if err := os.Chtimes(q, when, when); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}
