// Package instance knows what an application instance is made of: it parses
// layouts, discovers the instances present on a host, resolves one exact
// name and fingerprints what it found.
package instance

import (
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// DefaultNamePattern is the name_pattern of a layout that sets none.
const DefaultNamePattern = `^[a-z0-9][a-z0-9-]{0,62}$`

// Placeholder is the token replaced by an instance name in templates.
const Placeholder = "{name}"

// Component types.
const (
	TypeDir         = "dir"
	TypeFile        = "file"
	TypePostgreSQL  = "postgresql"
	TypeSystemdUnit = "systemd_unit"
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

// Component is one part of an instance.
type Component struct {
	Name     string
	Type     string
	Optional bool
	// Backup is nil when the layout says nothing, false when it opts out
	// explicitly with `backup: false`.
	Backup *bool
	// Template is the path, unit or database name with {name} in it.
	Template Template
	// Line is the component's line in the layout file, 0 when unknown.
	Line int
	// Key is the template's key in the layout, such as components[1].path,
	// and KeyLine its line (0 when unknown).
	Key     string
	KeyLine int
}

// Family groups component types whose locators can collide: paths (dir
// and file), databases, units.
func (c Component) Family() string {
	switch c.Type {
	case TypeDir, TypeFile:
		return "path"
	case TypePostgreSQL:
		return "database"
	}
	return c.Type
}

// IsPath reports whether the component lives in the filesystem.
func (c Component) IsPath() bool { return c.Type == TypeDir || c.Type == TypeFile }

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
type Template struct {
	Raw    string
	Prefix string
	Suffix string
}

// Expand returns the template with name in place of {name}.
func (t Template) Expand(name string) string { return t.Prefix + name + t.Suffix }

// Match returns the name that s was expanded from, if it was.
func (t Template) Match(s string) (string, bool) {
	if len(s) <= len(t.Prefix)+len(t.Suffix) || !strings.HasPrefix(s, t.Prefix) || !strings.HasSuffix(s, t.Suffix) {
		return "", false
	}
	return s[len(t.Prefix) : len(s)-len(t.Suffix)], true
}

// PathTemplate splits a component path around its {name} element:
// /srv/tracim/app-{name}/etc is Parent /srv/tracim, Elem "app-{name}", Rest
// "etc".
type PathTemplate struct {
	Parent string
	Elem   Template
	Rest   string
}

// SplitPath splits a validated component path template.
func SplitPath(t Template) PathTemplate {
	i := strings.Index(t.Raw, Placeholder)
	start := strings.LastIndex(t.Raw[:i], "/")
	end := strings.Index(t.Raw[i:], "/")
	var elem, rest string
	if end < 0 {
		elem = t.Raw[start+1:]
	} else {
		elem = t.Raw[start+1 : i+end]
		rest = t.Raw[i+end+1:]
	}
	parent := t.Raw[:start]
	if parent == "" {
		parent = "/"
	}
	j := strings.Index(elem, Placeholder)
	return PathTemplate{
		Parent: parent,
		Elem:   Template{Raw: elem, Prefix: elem[:j], Suffix: elem[j+len(Placeholder):]},
		Rest:   filepath.FromSlash(rest),
	}
}

// Component returns the component called name.
func (l *Layout) Component(name string) (Component, bool) {
	for _, c := range l.Components {
		if c.Name == name {
			return c, true
		}
	}
	return Component{}, false
}
