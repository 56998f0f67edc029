package attack5

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// TestKilledSoftDeleteLeavesNoTool attacks promise 2 ("nothing of a
// killed run lingers") on the soft delete's tools: the module is killed
// (SIGKILL, its own pid only) while the pg_dump, or the mariadb-dump, it
// started runs. The tool must die with it (FINDINGS-5.md #6, closed by
// pkg/childproc, for every tool the library starts). The tools are
// stand-ins first on PATH that say their pid and wait, so that the kill
// lands while the tool runs, whatever the tool would have done.
func TestKilledSoftDeleteLeavesNoTool(t *testing.T) {
	t.Run("pg_dump", func(t *testing.T) {
		x := newFx(t, "pg_custom")
		db := x.db("acme")
		x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", db))
		x.psql(t, db, "CREATE TABLE public.data (i int); INSERT INTO public.data VALUES (1);")
		killDuringTool(t, "pg_dump", x.layout, nil, x.pg.Env())
	})
	t.Run("mariadb-dump", func(t *testing.T) {
		c := fleettest.RequireMariaDB(t)
		app := fleettest.RandomApp()
		name := app + "_acme"
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		db, err := c.Open(ctx, "")
		must(t, err)
		defer db.Close()
		_, err = db.ExecContext(ctx, "CREATE DATABASE `"+name+"`")
		must(t, err)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if db, err := c.Open(ctx, ""); err == nil {
				_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
				db.Close()
			}
		})
		_, err = db.ExecContext(ctx, "CREATE TABLE `"+name+"`.data (i int)")
		must(t, err)
		root := t.TempDir()
		layout := filepath.Join(root, "layout.yml")
		must(t, os.WriteFile(layout, []byte(fmt.Sprintf("app: %s\ncomponents:\n  - name: db\n    type: mysql\n    database: %s_{name}\n", app, app)), 0o644))
		killDuringTool(t, "mariadb-dump", layout, map[string]any{"mysql_socket": mariadb.DefaultSocket, "mysql_user": "root"}, nil)
	})
}

// killDuringTool runs instance_soft_delete of acme with a stand-in for
// tool first on PATH, kills the module once the tool runs, and fails t
// when the tool outlives the module.
func killDuringTool(t *testing.T, tool, layout string, extra map[string]any, env []string) {
	t.Helper()
	shims := t.TempDir()
	pidFile := filepath.Join(shims, tool+".pid")
	must(t, os.WriteFile(filepath.Join(shims, tool), []byte("#!/bin/sh\necho $$ > "+pidFile+".tmp\nmv "+pidFile+".tmp "+pidFile+"\nexec sleep 60\n"), 0o755))
	args := map[string]any{"name": "acme", "layout_file": layout, "archive_dir": t.TempDir(),
		"reason": "attack5", "requested_by": "attack5", "retention_days": 1}
	for k, v := range extra {
		args[k] = v
	}
	c := modules.Cmd(t, "instance_soft_delete", args)
	c.Env = append(append(os.Environ(), env...), "PATH="+shims+":"+os.Getenv("PATH"))
	must(t, c.Start())
	var pid int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				t.Fatalf("%s: %v", pidFile, err)
			}
			break
		}
		if time.Now().After(deadline) {
			_ = c.Process.Kill()
			_ = c.Wait()
			t.Fatalf("the soft delete never started %s", tool)
		}
	}
	// The stand-in has become sleep once it is no longer sh.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(b)) == "sleep" {
			break
		}
	}
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil && running(pid) {
			_ = p.Kill()
		}
	})
	must(t, c.Process.Kill())
	_ = c.Wait()
	for deadline := time.Now().Add(2 * time.Second); running(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Fatalf("%s (pid %d, %q) still runs 2 s after the module was killed", tool, pid, strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
}

// running reports whether pid is a live process (not a zombie).
func running(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(st), ") Z ")
}
