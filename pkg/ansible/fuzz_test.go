package ansible_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/fleetsafe/fleetsafe/pkg/ansible"
)

// FuzzArgs feeds the protocol arbitrary args files, with _ansible_* keys:
// parsing, validation and masking must never panic, and the result is
// always one JSON object with changed and failed.
func FuzzArgs(f *testing.F) {
	f.Add([]byte(`{"name": "acme", "layout_file": "/etc/fleetsafe/tracim.yml", "_ansible_check_mode": true, "_ansible_diff": "yes", "_ansible_verbosity": 3}`))
	f.Add([]byte(`{"must": "x", "layout": {"app": "a"}, "count": "30", "items": "a,b", "enabled": "on", "login_password": "s3cret", "_ansible_new_key": [1, {"a": null}]}`))
	f.Add([]byte(`{"ANSIBLE_MODULE_ARGS": {"must": 1.5, "ratio": "x", "opts": "a=1 b=2"}}`))
	f.Add([]byte(`[1, 2]`))
	f.Add([]byte(`{"password": ["a", "b"], "login_password": {"k": "v"}, "nmae": 1}`))
	m := ansible.Module{Name: "instance_info", Spec: testSpec, Run: echo}
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, err := ansible.ParseArgs(data)
		if err != nil {
			return
		}
		// Validation outside Call, so that a panic is not recovered.
		args := map[string]any{}
		for k, v := range raw {
			if len(k) < 9 || k[:9] != "_ansible_" {
				args[k] = v
			}
		}
		_, _ = ansible.Validate("instance_info", testSpec, args)
		out := m.Call(context.Background(), raw)
		if _, ok := out["failed"].(bool); !ok {
			t.Fatalf("no failed key: %v", out)
		}
		if _, ok := out["changed"].(bool); !ok {
			t.Fatalf("no changed key: %v", out)
		}
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("result does not encode: %v", err)
		}
	})
}
