package instance

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoLayout is returned when neither a layout nor a layout file is given.
var ErrNoLayout = errors.New("no layout given")

// LayoutError is a layout that cannot be used. It names where the problem
// is: file, line (0 when the layout did not come from a file), key path
// (components[1].path) and the offending value.
type LayoutError struct {
	File  string
	Line  int
	Key   string
	Value string
	Msg   string
}

func (e *LayoutError) Error() string {
	var b strings.Builder
	b.WriteString("layout ")
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ", key %s", e.Key)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, ", value %q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Hint tells the operator what to do.
func (e *LayoutError) Hint() string {
	return "fix the layout and run again; nothing was changed"
}

// InvalidNameError is an instance name refused before anything happens.
type InvalidNameError struct {
	Name   string
	Reason string
}

func (e *InvalidNameError) Error() string {
	return fmt.Sprintf("invalid instance name %q: %s", e.Name, e.Reason)
}

// Hint tells the operator what to do.
func (e *InvalidNameError) Hint() string {
	return "give one exact instance name as listed by instance_info (no globs, paths, spaces or lists); nothing was changed"
}

// NotFoundError is an exact name that matches no component on this host.
type NotFoundError struct {
	Name string
	App  string
	Host string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("instance %q of %s not found on %s", e.Name, e.App, e.Host)
}

// Hint tells the operator what to do.
func (e *NotFoundError) Hint() string {
	return "check the spelling; instance_info without name lists the instances of this host"
}

// SymlinkEscapeError is a component whose {name} element is a symbolic link
// leading outside its parent directory. Such a component is reported and
// never archived, moved or removed.
type SymlinkEscapeError struct {
	Component string
	Path      string
	Target    string
}

func (e *SymlinkEscapeError) Error() string {
	return fmt.Sprintf("component %s: %s is a symbolic link leading outside its parent directory (to %s)", e.Component, e.Path, e.Target)
}

// Hint tells the operator what to do.
func (e *SymlinkEscapeError) Hint() string {
	return "inspect the link by hand; fleetsafe never follows it"
}
