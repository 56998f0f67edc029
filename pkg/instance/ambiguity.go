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

// RuleRef names one backup rule of one layout in error messages.
type RuleRef struct {
	File      string // the layout's Source
	Line      int
	Key       string // backups[1].path
	Path      string
	App       string
	Component string
}

func ruleRefOf(l *Layout, r BackupRule) RuleRef {
	line := r.KeyLine
	if line == 0 {
		line = r.Line
	}
	return RuleRef{File: l.Source, Line: line, Key: r.Key, Path: r.Path, App: l.App, Component: r.Component}
}

func (r RuleRef) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the backup rule of component %s of app %s (layout %s", r.Component, r.App, r.File)
	if r.Line > 0 {
		fmt.Fprintf(&b, " line %d", r.Line)
	}
	if r.Key != "" {
		fmt.Fprintf(&b, ", key %s", r.Key)
	}
	fmt.Fprintf(&b, ", value %q)", r.Path)
	return b.String()
}

// RuleOverlapError is a pair of backup rules, in one layout or in two
// layouts of a host, that can both match one file: that file would be
// credited to two (instance, component) pairs, and one of them would be
// reported backed up by the other's backup.
type RuleOverlapError struct {
	A, B      RuleRef
	Collision *RuleCollision
}

func (e *RuleOverlapError) Error() string {
	var b strings.Builder
	b.WriteString("layout ")
	b.WriteString(e.A.File)
	if e.A.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.A.Line)
	}
	fmt.Fprintf(&b, ", key %s, value %q: the backup rule of component %s can match the same file as %s", e.A.Key, e.A.Path, e.A.Component, e.B)
	switch c := e.Collision; {
	case c == nil:
	case c.Undecided:
		b.WriteString(": fleetsafe could not prove that the two never match one file; refusing")
	default:
		ca, cb := e.A.Component, e.B.Component
		if e.A.App != e.B.App {
			ca, cb = ca+" of "+e.A.App, cb+" of "+e.B.App
		}
		fmt.Fprintf(&b, ": %s is the backup of instance %q component %s by the one rule and of instance %q component %s by the other", c.File, c.NameA, ca, c.NameB, cb)
	}
	return b.String()
}

// Hint tells the operator what to do.
func (e *RuleOverlapError) Hint() string {
	return "give every component's backups a location or a file name that no other rule, of this layout or of any other layout of the host, can match " +
		"(a directory per app, a literal prefix of its own such as data- or db-, or a name_pattern that excludes the colliding names); nothing was changed"
}

// CheckLayouts refuses any pair of components, in one layout or across the
// given layouts, whose templates let two different (instance, component)
// pairs denote the same path, database or unit, or one path contain the
// other (see FindCollision), and any pair of backup rules that can match
// one file (see checkRules). Layouts are checked in order; the first
// overlap found is returned as an *OverlapError or a *RuleOverlapError.
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
	return checkRules(layouts)
}

// checkRules refuses any two backup rules, in one layout or across the
// given layouts, that can match one file (FindRuleCollision), whichever
// components and names they are for: a file is then the backup of two
// (instance, component) pairs, or of one pair under two rules. Run-on
// names within one rule (data-{name}-*.tar.gz matching acme-old's files
// for acme) are left to backup_verify's ownership, which credits such a
// file to no one when two known names can claim it.
func checkRules(layouts []*Layout) error {
	type item struct {
		l *Layout
		r BackupRule
	}
	var all []item
	for _, l := range layouts {
		for _, r := range l.Backups {
			all = append(all, item{l, r})
		}
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			a, b := all[i], all[j]
			col, err := FindRuleCollision(a.r.Path, a.l.NamePattern, b.r.Path, b.l.NamePattern)
			if err != nil {
				return fmt.Errorf("overlap analysis of %s and %s: %w", ruleRefOf(a.l, a.r), ruleRefOf(b.l, b.r), err)
			}
			if col != nil {
				return &RuleOverlapError{A: ruleRefOf(a.l, a.r), B: ruleRefOf(b.l, b.r), Collision: col}
			}
		}
	}
	return nil
}
