// Package paths holds the path component kinds: dir (a directory tree)
// and file (one regular file). Both are archived as tar entries, which
// pkg/softdelete collects, extracts and compares; they are quarantined by
// one rename into the trash directory of their parent and restored
// through a staging directory beside their place. Other kinds that live
// in the filesystem (sqlite) reuse what this package exports.
package paths

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

// Component types.
const (
	TypeDir  = "dir"
	TypeFile = "file"
)

// StagingPrefix starts the name of the directory in which a component is
// staged, beside its destination, before one rename puts it in place.
const StagingPrefix = ".fleetsafe-restore-"

// Dir is the dir kind: a directory and everything under it.
type Dir struct{ base }

// File is the file kind: one regular file.
type File struct{ base }

var (
	_ kind.Kind = Dir{}
	_ kind.Kind = File{}
)

func init() {
	kind.Register(Dir{base{typ: TypeDir}})
	kind.Register(File{base{typ: TypeFile}})
}

func (Dir) Noun() string       { return "directory" }
func (Dir) Shape() kind.Shape  { return kind.TreeDir }
func (File) Noun() string      { return "file" }
func (File) Shape() kind.Shape { return kind.TreeFile }

// base is what dir and file share.
type base struct{ typ string }

func (b base) Type() string                          { return b.typ }
func (base) Key() string                             { return "path" }
func (base) Family() string                          { return kind.FamilyPath }
func (base) CheckTemplate(raw string) string         { return CheckTemplate(raw) }
func (base) CheckName(kind.Component, string) string { return "" }

func (base) Locate(c kind.Component, name string) (string, error) {
	_, _, full, err := kind.LocatePath(c, name)
	return full, err
}

func (b base) Names(_ context.Context, _ *kind.Scan, c kind.Component) ([]string, error) {
	return Names(c, b.typ == TypeDir)
}

func (b base) State(_ context.Context, s *kind.Scan, c kind.Component, name string) (kind.State, error) {
	return State(c, name, s.Sizes, b.typ == TypeDir)
}

func (base) Preflight(context.Context, kind.Env, kind.State) (*kind.Refusal, error) { return nil, nil }

func (base) DumpExt() string { return "" }

func (b base) Dump(context.Context, kind.Env, kind.Target, string) (kind.Since, error) {
	return nil, fmt.Errorf("a %s component is archived as a tree, not dumped", b.typ)
}

func (b base) VerifyDump(io.Reader) (kind.DumpSummary, error) {
	return kind.DumpSummary{}, fmt.Errorf("a %s component is archived as a tree, not dumped", b.typ)
}

// systemDirs are directories under which a bare {name} element is refused:
// every entry there would be taken for an instance.
var systemDirs = []string{
	"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt",
	"/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin",
	"/usr/lib", "/usr/local", "/usr/share", "/usr/sbin", "/var", "/var/backups", "/var/cache",
	"/var/lib", "/var/local", "/var/log", "/var/mail", "/var/opt", "/var/run", "/var/spool",
	"/var/tmp", "/var/www", "/etc/systemd", "/etc/systemd/system",
}

// CheckTemplate returns why a component path template is unsafe, or "".
func CheckTemplate(raw string) string {
	switch {
	case !strings.HasPrefix(raw, "/"):
		return "path must be absolute"
	case strings.Count(raw, kind.Placeholder) != 1:
		return "path must contain {name} exactly once"
	case strings.ContainsFunc(raw, unicode.IsControl):
		return "path contains control characters"
	}
	rest := strings.Replace(raw, kind.Placeholder, "", 1)
	if strings.ContainsAny(rest, "*?[]{}") {
		return "glob characters (* ? [ ] { }) are not allowed in component paths"
	}
	for _, elem := range strings.Split(raw[1:], "/") {
		if elem == ".." {
			return "path must not contain '..'"
		}
		if strings.HasPrefix(elem, kind.ReservedDirPrefix) && !strings.Contains(elem, kind.Placeholder) {
			return "an element starting with " + kind.ReservedDirPrefix + " is fleetsafe's own (" + kind.TrashDirName + " quarantines components, .fleetsafe-restore- stages restores); a layout may not claim it"
		}
	}
	if path.Clean(raw) != raw {
		return "path must be clean: no '.', '//' or trailing '/'"
	}
	pt := kind.SplitPath(kind.Template{Raw: raw})
	if strings.HasPrefix(pt.Elem.Prefix, ".") {
		return "the {name} element must not start with '.': hidden entries are never instances (and " + kind.TrashDirName + " is where fleetsafe quarantines)"
	}
	if pt.Elem.Raw == kind.Placeholder && slices.Contains(systemDirs, pt.Parent) {
		return fmt.Sprintf("{name} directly under the system directory %s would make every entry there an instance; use a directory of the application's own, such as %s/<app>/{name}", pt.Parent, strings.TrimSuffix(pt.Parent, "/"))
	}
	return ""
}

// Names lists the names a path component finds in its parent directory.
// wantDir says the component itself is a directory.
func Names(c kind.Component, wantDir bool) ([]string, error) {
	pt := kind.SplitPath(c.Template)
	entries, err := os.ReadDir(pt.Parent)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", pt.Parent, err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name, ok := pt.Elem.Match(e.Name())
		if !ok {
			continue
		}
		t := e.Type()
		// The {name} element holds the component itself (rest empty) or
		// leads to it (rest set): a directory is expected unless the
		// component is a file sitting right there.
		dir := wantDir || pt.Rest != ""
		switch {
		case t&fs.ModeSymlink != 0:
			// Reported (and never followed out) by State.
		case dir && !t.IsDir():
			continue
		case !dir && !t.IsRegular():
			continue
		}
		out = append(out, name)
	}
	return out, nil
}

// State inspects a path component through os.Root, so that a symbolic
// link never leads the inspection out of the parent directory. wantDir
// says the component is a directory, else a regular file.
func State(c kind.Component, name string, sizes, wantDir bool) (kind.State, error) {
	pt, elem, full, err := kind.LocatePath(c, name)
	if err != nil {
		return kind.State{}, err
	}
	st := kind.State{Locator: full}
	root, err := os.OpenRoot(pt.Parent)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("open %s: %w", pt.Parent, err)
	}
	defer root.Close()

	fi, err := root.Lstat(elem)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("inspect %s: %w", filepath.Join(pt.Parent, elem), err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(filepath.Join(pt.Parent, elem))
		st.LinkTarget = target
		if _, err := root.Stat(elem); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// os.Root refuses links that lead out of the parent.
			st.Present = true
			st.Problem = fmt.Sprintf("component %s: %s is a symbolic link leading outside its parent directory (to %s)", c.Name, filepath.Join(pt.Parent, elem), target)
			return st, nil
		}
	}
	rel := elem
	if pt.Rest != "" {
		rel = filepath.Join(elem, pt.Rest)
	}
	fi, err = root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		if strings.Contains(err.Error(), "escapes") {
			st.Present = true
			st.Problem = fmt.Sprintf("component %s: %s leads outside %s through a symbolic link", c.Name, full, pt.Parent)
			return st, nil
		}
		return st, fmt.Errorf("inspect %s: %w", full, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		st.Present = true
		st.Problem = fmt.Sprintf("component %s: %s is a symbolic link where a %s is expected", c.Name, full, c.Type)
		return st, nil
	}
	switch {
	case wantDir && !fi.IsDir():
		st.Problem = fmt.Sprintf("expected a directory, found %s", describeMode(fi.Mode()))
		return st, nil
	case !wantDir && !fi.Mode().IsRegular():
		st.Problem = fmt.Sprintf("expected a regular file, found %s", describeMode(fi.Mode()))
		return st, nil
	}
	st.Present = true
	mod := fi.ModTime().UTC()
	st.Modified = &mod
	if !sizes {
		return st, nil
	}
	size, latest, err := walkSize(root, rel, fi)
	if err != nil {
		return st, err
	}
	st.SizeBytes = &size
	if latest.After(mod) {
		st.Modified = &latest
	}
	return st, nil
}

// walkSize sums regular file sizes under rel and finds the latest
// modification, without following symbolic links.
func walkSize(root *os.Root, rel string, fi fs.FileInfo) (int64, time.Time, error) {
	if !fi.IsDir() {
		return fi.Size(), fi.ModTime().UTC(), nil
	}
	var size int64
	var latest time.Time
	err := fs.WalkDir(root.FS(), filepath.ToSlash(rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		if info.Mode().IsRegular() {
			size += info.Size()
		}
		if m := info.ModTime().UTC(); m.After(latest) {
			latest = m
		}
		return nil
	})
	return size, latest, err
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}
