package mysql_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// TestMySQL_KilledAtRandomInstants runs the real instance_soft_delete,
// then instance_restore (from quarantine or from the archive), each
// killed with SIGKILL at a random instant of a run and run again: the
// re-run always succeeds, after the delete the database is gone from its
// name and its quarantine holds it, and after the restore it dumps byte
// for byte as before; no staging or scratch database of it is left.
func TestMySQL_KilledAtRandomInstants(t *testing.T) {
	c, db := server(t)
	lib := t.TempDir()
	fleettest.BuildFleetsafe(t, lib, "instance_soft_delete", "instance_restore")
	n := newNextcloud(t, db)
	layout := filepath.Join(n.root, "nextcloud.yml")
	require.NoError(t, os.WriteFile(layout, []byte(fmt.Sprintf("app: nextcloud\ncomponents:\n"+
		"  - name: data\n    type: dir\n    path: %s/srv/{name}/data\n"+
		"  - name: db\n    type: mysql\n    database: %s_{name}\n", n.root, n.prefix)), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(n.root, "nolayouts"), 0o755))
	n.create(t, db, "acme")
	want := dumpOf(t, c, n.database("acme"))
	args := func(extra map[string]any) map[string]any {
		a := map[string]any{"name": "acme", "archive_dir": n.archives, "layout_file": layout, "layouts_dir": filepath.Join(n.root, "nolayouts")}
		for k, v := range extra {
			a[k] = v
		}
		return a
	}
	// run runs a module, killed after kill (0: never); it returns the
	// result of a run that was not killed.
	run := func(module string, a map[string]any, kill time.Duration) (map[string]any, bool) {
		cmd := fleettest.ModuleCmd(t, filepath.Join(lib, module), a)
		var out strings.Builder
		cmd.Stdout = &out
		require.NoError(t, cmd.Start())
		if kill > 0 {
			timer := time.AfterFunc(kill, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
			defer timer.Stop()
		}
		err := cmd.Wait()
		var res map[string]any
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return nil, true
		}
		require.NoError(t, json.Unmarshal([]byte(out.String()), &res), "%v %s", err, out.String())
		return res, false
	}
	timed := func(module string, a map[string]any) time.Duration {
		start := time.Now()
		res, _ := run(module, a, 0)
		require.NotEqual(t, true, res["failed"], "%v", res)
		return time.Since(start)
	}
	// One uninterrupted round measures how long each run takes.
	del := timed("instance_soft_delete", args(map[string]any{"reason": "measure"}))
	rest := timed("instance_restore", args(nil))
	require.Equal(t, want, dumpOf(t, c, n.database("acme")))

	killed := 0
	for i := range 6 {
		source := []string{"quarantine", "archive"}[i%2]
		k := time.Duration(rand.Int64N(int64(del)))
		if _, was := run("instance_soft_delete", args(map[string]any{"reason": fmt.Sprint("kill ", i)}), k); was {
			killed++
		}
		res, was := run("instance_soft_delete", args(map[string]any{"reason": fmt.Sprint("rerun ", i)}), 0)
		require.False(t, was)
		require.NotEqual(t, true, res["failed"], "re-run of a delete killed at %v: %v", k, res)
		require.False(t, exists(t, db, n.database("acme")), "deleted after the re-run (killed at %v)", k)

		k = time.Duration(rand.Int64N(int64(rest)))
		if _, was := run("instance_restore", args(map[string]any{"source": source}), k); was {
			killed++
		}
		res, was = run("instance_restore", args(map[string]any{"source": source}), 0)
		require.False(t, was)
		require.NotEqual(t, true, res["failed"], "re-run of a restore (source %s) killed at %v: %v", source, k, res)
		require.Equal(t, want, dumpOf(t, c, n.database("acme")), "restored (source %s) after a kill at %v", source, k)
	}
	t.Logf("%d of 12 runs killed before they ended", killed)

	own, err := mariadb.Own(t.Context(), db)
	require.NoError(t, err)
	for _, o := range own {
		if strings.Contains(o, n.prefix) && !strings.HasPrefix(o, mariadb.QuarantinePrefix) {
			t.Errorf("left behind: %s", o)
		}
	}
	assert.Equal(t, want, dumpOf(t, c, n.database("acme")))
}
