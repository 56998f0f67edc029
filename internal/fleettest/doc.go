package fleettest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/fleetsafe/fleetsafe/pkg/ansible"
)

// CheckDocOptions fails tb unless the module's sidecar doc
// (modules/<name>/<name>.yml) documents exactly the parameters of spec,
// with the same type, default and aliases.
func CheckDocOptions(tb testing.TB, name string, spec ansible.Spec) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(RepoRoot(), "modules", name, name+".yml"))
	if err != nil {
		tb.Fatal(err)
	}
	var doc struct {
		Documentation struct {
			Options map[string]struct {
				Type    string   `yaml:"type"`
				Default any      `yaml:"default"`
				Aliases []string `yaml:"aliases"`
			} `yaml:"options"`
		} `yaml:"DOCUMENTATION"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		tb.Fatalf("sidecar doc of %s: %v", name, err)
	}
	opts := doc.Documentation.Options
	for k, p := range spec.Params {
		o, ok := opts[k]
		if !ok {
			tb.Errorf("%s: parameter %s is not documented in %s.yml", name, k, name)
			continue
		}
		if o.Type != string(p.Type) {
			tb.Errorf("%s: parameter %s has type %s, documented as %s", name, k, p.Type, o.Type)
		}
		if p.Default != nil && fmt.Sprint(p.Default) != fmt.Sprint(o.Default) {
			tb.Errorf("%s: parameter %s defaults to %v, documented as %v", name, k, p.Default, o.Default)
		}
		if !slices.Equal(slices.Sorted(slices.Values(p.Aliases)), slices.Sorted(slices.Values(o.Aliases))) {
			tb.Errorf("%s: parameter %s has aliases %v, documented as %v", name, k, p.Aliases, o.Aliases)
		}
	}
	for k := range opts {
		if _, ok := spec.Params[k]; !ok {
			tb.Errorf("%s: %s.yml documents %s, which the module does not take", name, name, k)
		}
	}
}
