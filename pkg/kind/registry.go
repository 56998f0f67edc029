package kind

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

var (
	registryMu sync.RWMutex
	registry   = map[string]Kind{}
)

// Register makes a kind available under its Type. It panics when the type
// is empty or already registered: two kinds for one type is a programming
// error found at start-up (kinds register from init functions).
func Register(k Kind) {
	if err := register(k); err != nil {
		panic(err)
	}
}

// register is Register returning its refusal.
func register(k Kind) error {
	registryMu.Lock()
	defer registryMu.Unlock()
	t := k.Type()
	if t == "" {
		return fmt.Errorf("kind: register %T: empty type", k)
	}
	if prev, dup := registry[t]; dup {
		return fmt.Errorf("kind: type %q registered twice (%T and %T)", t, prev, k)
	}
	registry[t] = k
	return nil
}

// Lookup returns the kind registered for a component type.
func Lookup(typ string) (Kind, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	k, ok := registry[typ]
	return k, ok
}

// Types returns every registered type, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// TypeList lists the registered types for messages: "dir, file,
// postgresql or systemd_unit".
func TypeList() string {
	t := Types()
	if len(t) <= 1 {
		return strings.Join(t, "")
	}
	return strings.Join(t[:len(t)-1], ", ") + " or " + t[len(t)-1]
}
