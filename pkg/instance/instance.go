package instance

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

// Instance statuses.
const (
	StatusComplete = "complete"
	StatusPartial  = "partial"
)

// Instance is one instance of a layout found on a host.
type Instance struct {
	Name       string           `json:"name"`
	App        string           `json:"app"`
	Host       string           `json:"host"`
	Status     string           `json:"status"`
	Components []ComponentState `json:"components"`
	// LastActivity is the latest modification seen in any component.
	LastActivity *time.Time `json:"last_activity"`
	// SizeBytes sums the sizes of present components (0 when sizes were
	// not computed).
	SizeBytes int64 `json:"size_bytes"`

	hostID string
}

// ComponentState is what discovery found of one component of an instance
// (kind.State, shared with the component kinds).
type ComponentState = kind.State

// State returns the state of the component called name.
func (i *Instance) State(name string) (ComponentState, bool) {
	for _, c := range i.Components {
		if c.Name == name {
			return c, true
		}
	}
	return ComponentState{}, false
}

func (i *Instance) summarize() {
	i.Status = StatusComplete
	i.LastActivity = nil
	i.SizeBytes = 0
	for _, c := range i.Components {
		if !c.Present && !c.Optional {
			i.Status = StatusPartial
		}
		if c.Modified != nil && (i.LastActivity == nil || c.Modified.After(*i.LastActivity)) {
			t := *c.Modified
			i.LastActivity = &t
		}
		if c.SizeBytes != nil {
			i.SizeBytes += *c.SizeBytes
		}
	}
}

// Fingerprint is a stable hex digest of the host's identity, the app, the
// instance name and each component's locator and presence. Sizes and
// contents are left out: they change while the instance runs. A plan
// approved with one fingerprint is refused when the fleet no longer matches.
func (i *Instance) Fingerprint() string {
	var b strings.Builder
	hostID := i.hostID
	if hostID == "" {
		hostID = i.Host
	}
	fmt.Fprintf(&b, "fleetsafe-fingerprint-v1\nhost=%s\napp=%s\nname=%s\n", hostID, i.App, i.Name)
	for _, c := range i.Components {
		fmt.Fprintf(&b, "component=%s\ttype=%s\tlocator=%s\tpresent=%t\n", c.Name, c.Type, c.Locator, c.Present)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// Hostname returns this host's name, "unknown-host" when it has none.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown-host"
	}
	return h
}

// HostIdentity names this host for fingerprints: its hostname and, where
// readable, its machine-id, so that two hosts with one hostname differ.
func HostIdentity() string {
	h := Hostname()
	if id, err := os.ReadFile("/etc/machine-id"); err == nil && len(strings.TrimSpace(string(id))) > 0 {
		return h + "/" + strings.TrimSpace(string(id))
	}
	return h
}
