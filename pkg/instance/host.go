package instance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultLayoutsDir is where a host keeps the layouts of all its
// applications, one file per application.
const DefaultLayoutsDir = "/etc/fleetsafe/layouts.d"

// IsLayoutFileName reports whether a directory entry is a layout file:
// a name ending in .yml or .yaml (any case) that does not start with a
// dot. Other entries of a layouts directory (README, editor backups such
// as tracim.yml~ or tracim.yml.dpkg-old) are not layouts.
func IsLayoutFileName(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return !strings.HasPrefix(name, ".") && (ext == ".yml" || ext == ".yaml")
}

// LoadLayoutsDir loads every layout file of dir (see IsLayoutFileName),
// sorted by file name. A file that cannot be read or parsed is an error
// naming it, never skipped; so is an entry with a layout file name that
// is not a regular file (a dangling link, a directory). Two files for one
// app are refused. A missing dir is no layouts when missingOK is set (the
// default directory on a host that keeps none), an error otherwise.
func LoadLayoutsDir(dir string, missingOK bool) ([]*Layout, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) && missingOK {
		return nil, nil
	}
	if err != nil {
		return nil, &HostLayoutsError{Dir: dir, Err: fmt.Errorf("read layouts directory: %w", err)}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var out []*Layout
	byApp := map[string]*Layout{}
	for _, e := range entries {
		if !IsLayoutFileName(e.Name()) {
			continue
		}
		file := filepath.Join(dir, e.Name())
		fi, err := os.Stat(file)
		if err != nil {
			return nil, &HostLayoutsError{Dir: dir, Err: fmt.Errorf("layout file %s: %w", file, err)}
		}
		if !fi.Mode().IsRegular() {
			return nil, &HostLayoutsError{Dir: dir, Err: fmt.Errorf("layout file %s is not a regular file", file)}
		}
		l, err := LoadLayoutFile(file)
		if err != nil {
			return nil, &HostLayoutsError{Dir: dir, Err: err}
		}
		if prev, dup := byApp[l.App]; dup {
			return nil, &HostLayoutsError{Dir: dir, Err: &LayoutError{File: file, Key: "app", Value: l.App,
				Msg: fmt.Sprintf("app %s is already described by %s; a host keeps one layout per application", l.App, prev.Source)}}
		}
		byApp[l.App] = l
		out = append(out, l)
	}
	return out, nil
}

// HostLayoutsError is a layouts directory that cannot be used.
type HostLayoutsError struct {
	Dir string
	Err error
}

func (e *HostLayoutsError) Error() string { return fmt.Sprintf("layouts_dir %s: %v", e.Dir, e.Err) }
func (e *HostLayoutsError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *HostLayoutsError) Hint() string {
	return "every *.yml or *.yaml file of the layouts directory must be a valid layout, one per application; fix or move the file named and run again; nothing was changed"
}

// WithHost checks l against the other layouts of its host and records them
// for discovery's run-time check. A layout of host for l's own app is l's
// own description (usually the very file l was read from) and is replaced
// by l; it must give the same name_pattern and component locators (backup
// rules may differ), else l is refused: instances are not found one way
// and acted on another. Every pair of components across l and the others, and within the
// others, is analysed (CheckLayouts); an overlap is an *OverlapError.
func (l *Layout) WithHost(host []*Layout) error {
	all := []*Layout{l}
	for _, o := range host {
		if o.App != l.App {
			all = append(all, o)
			continue
		}
		if diff := locatorDiff(o, l); diff != "" {
			return &LayoutError{File: l.Source, Key: "app", Value: l.App, Msg: fmt.Sprintf(
				"the host describes app %s in %s, differently: %s; give that file as layout_file, or make the two agree",
				l.App, o.Source, diff)}
		}
	}
	if err := CheckLayouts(all...); err != nil {
		return err
	}
	l.Others = all[1:]
	return nil
}

// locatorDiff says how two layouts of one app differ in what decides their
// instances' locators, "" when they do not.
func locatorDiff(host, given *Layout) string {
	if host.NamePattern.String() != given.NamePattern.String() {
		return fmt.Sprintf("name_pattern %s there, %s here", host.NamePattern, given.NamePattern)
	}
	for _, hc := range host.Components {
		gc, ok := given.Component(hc.Name)
		switch {
		case !ok:
			return fmt.Sprintf("component %s (%s) there, none here", hc.Name, hc.Template.Raw)
		case gc.Type != hc.Type || gc.Template.Raw != hc.Template.Raw:
			return fmt.Sprintf("component %s is %s %s there, %s %s here", hc.Name, hc.Type, hc.Template.Raw, gc.Type, gc.Template.Raw)
		}
	}
	for _, gc := range given.Components {
		if _, ok := host.Component(gc.Name); !ok {
			return fmt.Sprintf("component %s (%s) here, none there", gc.Name, gc.Template.Raw)
		}
	}
	return ""
}
