// Package instance knows what an application instance is made of: it parses
// layouts, discovers the instances present on a host, resolves one exact
// name and fingerprints what it found.
package instance

import (
	"regexp"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	_ "github.com/fleetsafe/fleetsafe/pkg/kinds" // every kind, registered
	"github.com/fleetsafe/fleetsafe/pkg/kinds/paths"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/systemd"
)

// DefaultNamePattern is the name_pattern of a layout that sets none.
const DefaultNamePattern = `^[a-z0-9][a-z0-9-]{0,62}$`

// Placeholder is the token replaced by an instance name in templates.
const Placeholder = kind.Placeholder

// Component types of the kinds fleetsafe ships (pkg/kinds); a layout may
// use any type registered with pkg/kind.
const (
	TypeDir         = paths.TypeDir
	TypeFile        = paths.TypeFile
	TypePostgreSQL  = postgresql.Type
	TypeSystemdUnit = systemd.Type
)

// Layout describes how the instances of one application are laid out on a
// host and how they must be backed up.
type Layout struct {
	// Source names where the layout came from (a file path, or
	// "<layout parameter>"), for error messages.
	Source      string
	App         string
	NamePattern *regexp.Regexp
	Components  []Component
	Backups     []BackupRule
	// Others are the other layouts of the host (WithHost), whose instances
	// discovery checks against this layout's at run time.
	Others []*Layout
}

// Component is one part of an instance (kind.Component, shared with the
// component kinds). Its Family and IsPath come from its kind.
type Component = kind.Component

// BackupRule is one entry of a layout's backups: list.
type BackupRule struct {
	Component string
	// Path is an absolute glob with {name} in it.
	Path      string
	Format    string
	MaxAge    time.Duration
	MinSize   int64
	MaxShrink float64 // fraction, 0.5 for "50%"; 0 when unset
	Checksum  string
	// Line is the rule's line in the layout file, 0 when unknown.
	Line int
	// Key is the path's key in the layout, such as backups[1].path, and
	// KeyLine its line (0 when unknown).
	Key     string
	KeyLine int
}

// Template is a string containing {name} exactly once.
type Template = kind.Template

// PathTemplate splits a component path around its {name} element:
// /srv/tracim/app-{name}/etc is Parent /srv/tracim, Elem "app-{name}", Rest
// "etc".
type PathTemplate = kind.PathTemplate

// SplitPath splits a validated component path template.
func SplitPath(t Template) PathTemplate { return kind.SplitPath(t) }

// Component returns the component called name.
func (l *Layout) Component(name string) (Component, bool) {
	for _, c := range l.Components {
		if c.Name == name {
			return c, true
		}
	}
	return Component{}, false
}
