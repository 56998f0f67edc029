package model

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/internal/testhooks"
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
	// One multi-call binary (cmd/fleetsafe), built once; a file named
	// after a module is that module.
	bin := filepath.Join(built.dir, "fleetsafe")
	if !built.done["fleetsafe"] {
		cmd := exec.Command("go", "build", "-tags", testhooks.Tag, "-o", bin, "./cmd/fleetsafe")
		cmd.Dir = fleettest.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build cmd/fleetsafe: %v\n%s", err, out)
		}
		built.done["fleetsafe"] = true
	}
	for _, n := range names {
		if built.done[n] {
			continue
		}
		if err := os.Link(bin, filepath.Join(built.dir, n)); err != nil {
			t.Fatalf("module %s: %v", n, err)
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
