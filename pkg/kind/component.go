package kind

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"iter"
	"path/filepath"
	"strings"
	"time"
)

// Placeholder is the token replaced by an instance name in templates.
const Placeholder = "{name}"

// ReservedDirPrefix starts the names of the directories fleetsafe creates
// beside components (.fleetsafe-trash, .fleetsafe-restore-<id>-<component>).
const ReservedDirPrefix = ".fleetsafe-"

// TrashDirName is the hidden directory where soft delete quarantines path
// components, in each component's parent; no layout may claim it.
const TrashDirName = ".fleetsafe-trash"

// Component is one part of an instance, as a layout describes it
// (pkg/instance calls it instance.Component).
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
	// Owner is the layout's owner template of a postgresql component (the
	// role its database must belong to, {name} allowed), "" when unset.
	Owner string
}

// OwnerFor is the owner template with name in place of {name} ("" when
// the layout sets no owner).
func (c Component) OwnerFor(name string) string {
	return strings.Replace(c.Owner, Placeholder, name, 1)
}

// Kind returns the component's kind; false for a type no kind registered
// (a parsed layout never has one).
func (c Component) Kind() (Kind, bool) { return Lookup(c.Type) }

// Family groups component types whose locators can collide: paths (dir
// and file), databases, units. An unknown type is its own family.
func (c Component) Family() string {
	if k, ok := Lookup(c.Type); ok {
		return k.Family()
	}
	return c.Type
}

// IsPath reports whether the component lives in the filesystem.
func (c Component) IsPath() bool { return c.Family() == FamilyPath }

// State is what discovery found of one component of an instance
// (pkg/instance calls it instance.ComponentState).
type State struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Optional bool   `json:"optional"`
	Present  bool   `json:"present"`
	// Locator is the path, unit name or database name.
	Locator   string     `json:"locator"`
	SizeBytes *int64     `json:"size_bytes"`
	Modified  *time.Time `json:"modified"`
	// Problem explains a component that is present but unsafe to touch
	// (a symbolic link leading out) or of the wrong kind.
	Problem string `json:"problem,omitempty"`
	// LinkTarget is set when the {name} element is a symbolic link.
	LinkTarget string `json:"link_target,omitempty"`
	// UnitFile is, for a systemd unit, the unit file or enablement link
	// found under the systemd directory.
	UnitFile string `json:"unit_file,omitempty"`
	// Active is set for a systemd unit when a running systemd answered.
	Active *bool `json:"active,omitempty"`
}

// Template is a string containing {name} exactly once.
type Template struct {
	Raw    string
	Prefix string
	Suffix string
}

// NewTemplate splits raw around its first {name}.
func NewTemplate(raw string) Template {
	i := strings.Index(raw, Placeholder)
	if i < 0 {
		return Template{Raw: raw, Prefix: raw}
	}
	return Template{Raw: raw, Prefix: raw[:i], Suffix: raw[i+len(Placeholder):]}
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

// MatchAll returns the names that the strings of seq were expanded from,
// in seq's order; strings that do not fit the template are passed over
// (a database kind lists its server's databases with it).
func (t Template) MatchAll(seq iter.Seq[string]) []string {
	var out []string
	for s := range seq {
		if n, ok := t.Match(s); ok {
			out = append(out, n)
		}
	}
	return out
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

// Join composes a path under parent from elements that must each be local
// (no separators of their own, no "..", not absolute). It is the one place
// where fleetsafe builds a path from an instance name.
func Join(parent string, elems ...string) (string, error) {
	out := parent
	for _, e := range elems {
		if e == "" {
			continue
		}
		if !filepath.IsLocal(e) {
			return "", fmt.Errorf("path element %q would leave %s", e, parent)
		}
		out = filepath.Join(out, e)
	}
	return out, nil
}

// LocatePath returns the path of a path component for an instance name
// and the pieces it is made of.
func LocatePath(c Component, name string) (pt PathTemplate, elem, full string, err error) {
	pt = SplitPath(c.Template)
	elem = pt.Elem.Expand(name)
	if strings.ContainsRune(elem, filepath.Separator) {
		return pt, "", "", fmt.Errorf("instance name %q would add a path element", name)
	}
	full, err = Join(pt.Parent, elem, pt.Rest)
	return pt, elem, full, err
}

// StagingID is stable for one instance of one app, so that a run killed
// mid-restore leaves a staging place the next run finds and removes, and
// two instances sharing a parent directory never touch each other's.
func StagingID(app, name string) string {
	sum := sha256.Sum256([]byte(app + "\x00" + name))
	return hex.EncodeToString(sum[:6])
}

// ShortID is the random part of deletion id (what follows its last '-'),
// or the whole id when it has none: what a quarantine name on a database
// server carries, so that the name stays short and still names the
// deletion.
func ShortID(id string) string {
	if i := strings.LastIndex(id, "-"); i >= 0 {
		return id[i+1:]
	}
	return id
}
