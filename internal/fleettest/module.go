package fleettest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/fleetsafe/fleetsafe/internal/testhooks"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
)

// A test binary that uses this harness runs module code in-process with
// the test hooks' variables (FLEETSAFE_SYSTEMD_DIR, …), as the binaries
// of `make build` and BuildFleetsafe do (testhooks.Enable).
func init() { testhooks.Enable() }

// CallModule runs a module's logic on this fleet without a process: the
// fleet's layout file and systemd directory, then the key/value pairs of
// kv (which may override them). The result comes back through JSON, as
// ansible-core sees it.
func (f *Fleet) CallModule(t *testing.T, m ansible.Module, kv ...any) map[string]any {
	t.Helper()
	t.Setenv("FLEETSAFE_SYSTEMD_DIR", f.SystemdDir)
	raw := map[string]any{"layout_file": f.LayoutFile}
	for i := 0; i+1 < len(kv); i += 2 {
		raw[kv[i].(string)] = kv[i+1]
	}
	out := m.Call(context.Background(), raw)
	buf, err := json.Marshal(out)
	if err != nil {
		t.Fatalf("result does not encode: %v", err)
	}
	var back map[string]any
	if err := json.Unmarshal(buf, &back); err != nil {
		t.Fatal(err)
	}
	return back
}
