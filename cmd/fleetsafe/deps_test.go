package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// TestBinaries_DoNotLinkTesting: neither the modules' binary nor the demo's
// sandbox links package testing (or the tests' harness, or the test hooks'
// tag): `go list -deps` of both, as they are built, holds none of them.
func TestBinaries_DoNotLinkTesting(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/fleetsafe-sandbox", "./cmd/fleetsafe")
	cmd.Dir = fleettest.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 20 {
		t.Fatalf("go list -deps listed only %v", deps)
	}
	for _, p := range deps {
		if p == "testing" || strings.HasPrefix(p, "testing/") || strings.HasSuffix(p, "/internal/fleettest") {
			t.Errorf("cmd/fleetsafe or cmd/fleetsafe-sandbox links %s", p)
		}
	}
}
