package instance

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

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

// Locate returns the path of a dir or file component for an instance name
// and the pieces it is made of.
func Locate(c Component, name string) (pt PathTemplate, elem, full string, err error) {
	pt = SplitPath(c.Template)
	elem = pt.Elem.Expand(name)
	if strings.ContainsRune(elem, filepath.Separator) {
		return pt, "", "", fmt.Errorf("instance name %q would add a path element", name)
	}
	full, err = Join(pt.Parent, elem, pt.Rest)
	return pt, elem, full, err
}

// pathNames lists the names a dir or file component finds in its parent
// directory.
func pathNames(c Component) ([]string, error) {
	pt := SplitPath(c.Template)
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
		wantDir := c.Type == TypeDir || pt.Rest != ""
		switch {
		case t&fs.ModeSymlink != 0:
			// Reported (and never followed out) by pathState.
		case wantDir && !t.IsDir():
			continue
		case !wantDir && !t.IsRegular():
			continue
		}
		out = append(out, name)
	}
	return out, nil
}

// pathState inspects a dir or file component through os.Root, so that a
// symbolic link never leads the inspection out of the parent directory.
func pathState(c Component, name string, sizes bool) (ComponentState, error) {
	pt, elem, full, err := Locate(c, name)
	if err != nil {
		return ComponentState{}, err
	}
	st := ComponentState{Locator: full}
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
			st.Problem = (&SymlinkEscapeError{Component: c.Name, Path: filepath.Join(pt.Parent, elem), Target: target}).Error()
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
	case c.Type == TypeDir && !fi.IsDir():
		st.Problem = fmt.Sprintf("expected a directory, found %s", describeMode(fi.Mode()))
		return st, nil
	case c.Type == TypeFile && !fi.Mode().IsRegular():
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
