package model

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// The module binaries the machines run, built once per test process (each
// test building its own costs seconds on a loaded machine) into a
// directory removed when the tests end.
var built struct {
	sync.Mutex
	dir  string
	done map[string]bool
}

// modules returns the directory of the built module binaries, building
// the named ones that are not built yet.
func modules(t *testing.T, names ...string) string {
	t.Helper()
	defer timed("build modules", time.Now())
	built.Lock()
	defer built.Unlock()
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "fleetsafe-model-modules-")
		if err != nil {
			t.Fatal(err)
		}
		built.dir, built.done = dir, map[string]bool{}
	}
	for _, n := range names {
		if built.done[n] {
			continue
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(built.dir, n), "./modules/"+n)
		cmd.Dir = fleettest.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build module %s: %v\n%s", n, err, out)
		}
		built.done[n] = true
	}
	return built.dir
}

func removeModules() {
	built.Lock()
	defer built.Unlock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}
