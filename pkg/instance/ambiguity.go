package instance

import (
	"fmt"
	"strings"
)

// ComponentRef names one component of one layout in error messages.
type ComponentRef struct {
	File      string // the layout's Source
	Line      int
	Key       string // components[1].path
	Template  string
	App       string
	Component string
}

func refOf(l *Layout, c Component) ComponentRef {
	return ComponentRef{File: l.Source, Line: c.KeyLine, Key: c.Key, Template: c.Template.Raw, App: l.App, Component: c.Name}
}

func (r ComponentRef) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "component %s of app %s (layout %s", r.Component, r.App, r.File)
	if r.Line > 0 {
		fmt.Fprintf(&b, " line %d", r.Line)
	}
	if r.Key != "" {
		fmt.Fprintf(&b, ", key %s", r.Key)
	}
	fmt.Fprintf(&b, ", value %q)", r.Template)
	return b.String()
}

// OverlapError is a pair of component templates, in one layout or in two
// layouts of a host, that let two (instance, component) pairs denote the
// same path, database or unit, or one path contain the other.
type OverlapError struct {
	A, B ComponentRef
	// Duplicate is set when both components have the same template.
	Duplicate bool
	// Collision is the example that proves it (Undecided when the analysis
	// could not decide and refused to be safe).
	Collision *Collision
}

func (e *OverlapError) Error() string {
	var b strings.Builder
	b.WriteString("layout ")
	b.WriteString(e.A.File)
	if e.A.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.A.Line)
	}
	fmt.Fprintf(&b, ", key %s, value %q: ", e.A.Key, e.A.Template)
	if e.Duplicate {
		fmt.Fprintf(&b, "component %s has the same template as %s", e.A.Component, e.B)
	} else {
		fmt.Fprintf(&b, "component %s overlaps %s", e.A.Component, e.B)
	}
	if e.Collision != nil {
		ca, cb := e.A.Component, e.B.Component
		if e.A.App != e.B.App {
			ca, cb = ca+" of "+e.A.App, cb+" of "+e.B.App
		}
		b.WriteString(": ")
		b.WriteString(e.Collision.Describe(ca, cb))
	}
	return b.String()
}

// Hint tells the operator what to do.
func (e *OverlapError) Hint() string {
	return "give every component a location that no other instance or component, of this layout or of any other layout of the host, can produce or contain " +
		"(a literal part of its own around {name}, a directory of its own, or a name_pattern that excludes the colliding names); nothing was changed"
}

// CheckLayouts refuses any pair of components, in one layout or across the
// given layouts, whose templates let two different (instance, component)
// pairs denote the same path, database or unit, or one path contain the
// other (see FindCollision). Layouts are checked in order; the first
// overlap found is returned as an *OverlapError.
func CheckLayouts(layouts ...*Layout) error {
	type item struct {
		l *Layout
		c Component
	}
	var all []item
	for _, l := range layouts {
		for _, c := range l.Components {
			all = append(all, item{l, c})
		}
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			a, b := all[i], all[j]
			if a.c.Family() != b.c.Family() {
				continue
			}
			col, err := FindCollision(
				LocatorTemplate{Template: a.c.Template, Pattern: a.l.NamePattern},
				LocatorTemplate{Template: b.c.Template, Pattern: b.l.NamePattern},
				a.c.Family() == "path")
			if err != nil {
				return fmt.Errorf("overlap analysis of %s and %s: %w", refOf(a.l, a.c), refOf(b.l, b.c), err)
			}
			if col != nil || a.c.Template.Raw == b.c.Template.Raw {
				return &OverlapError{A: refOf(a.l, a.c), B: refOf(b.l, b.c), Duplicate: a.c.Template.Raw == b.c.Template.Raw, Collision: col}
			}
		}
	}
	return nil
}
