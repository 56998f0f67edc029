package instance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Claim is one locator of one (instance, component) pair of a host.
type Claim struct {
	App, Instance, Component string
	// Locator is the path, database or unit the layout gives; Resolved,
	// for paths, is the same path with its parent directory's symbolic
	// links resolved (empty when the parent does not exist or has none).
	Locator, Resolved string
}

func (c Claim) String() string {
	s := fmt.Sprintf("instance %q component %s of app %s (%s", c.Instance, c.Component, c.App, c.Locator)
	if c.Resolved != "" && c.Resolved != c.Locator {
		s += ", really " + c.Resolved
	}
	return s + ")"
}

func (c Claim) samePair(d Claim) bool {
	return c.App == d.App && c.Instance == d.Instance && c.Component == d.Component
}

// ClaimError is an instance refused at run time because another
// (instance, component) pair of the host, of this layout or another one,
// claims the same path, database or unit, or a path containing or
// contained by one of its own.
type ClaimError struct {
	A, B     Claim
	Relation Relation // Same, AContains or BContains
}

func (e *ClaimError) Error() string {
	switch e.Relation {
	case AContains:
		return fmt.Sprintf("%s contains %s: both are refused", e.A, e.B)
	case BContains:
		return fmt.Sprintf("%s contains %s: both are refused", e.B, e.A)
	}
	return fmt.Sprintf("%s and %s denote the same thing: both are refused", e.A, e.B)
}

// Hint tells the operator what to do.
func (e *ClaimError) Hint() string {
	return "two instances of this host share a location (often through a symbolic link or a bind mount in a parent directory); " +
		"inspect both by hand and give each its own before running again; nothing was changed"
}

// hostClaims lists the claims of every instance that the host shows for l
// and l.Others (the names found by each layout's components), plus the
// instance extra of l when it is not empty.
func (l *Layout) hostClaims(ctx context.Context, s *scan, extra string) ([]Claim, error) {
	// Only families l has can collide with l's claims: a layout of paths
	// alone needs no database server to be checked.
	families := map[string]bool{}
	for _, c := range l.Components {
		families[c.Family()] = true
	}
	var out []Claim
	for _, ly := range append([]*Layout{l}, l.Others...) {
		comps := slices.DeleteFunc(slices.Clone(ly.Components), func(c Component) bool { return !families[c.Family()] })
		names := map[string]bool{}
		if ly == l && extra != "" {
			names[extra] = true
		}
		for _, c := range comps {
			found, err := s.names(ctx, c)
			if err != nil {
				return nil, fmt.Errorf("discover component %s of app %s: %w", c.Name, ly.App, err)
			}
			for _, n := range found {
				if ly.ValidateName(n) == nil {
					names[n] = true
				}
			}
		}
		resolved := map[string]string{}
		for _, c := range comps {
			if !c.IsPath() {
				continue
			}
			pt := SplitPath(c.Template)
			if _, done := resolved[pt.Parent]; done {
				continue
			}
			real, err := filepath.EvalSymlinks(pt.Parent)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				resolved[pt.Parent] = ""
			case err != nil:
				return nil, fmt.Errorf("resolve %s (component %s of app %s): %w", pt.Parent, c.Name, ly.App, err)
			default:
				resolved[pt.Parent] = real
			}
		}
		for n := range names {
			for _, c := range comps {
				cl := Claim{App: ly.App, Instance: n, Component: c.Name, Locator: c.Template.Expand(n)}
				if c.IsPath() {
					pt, elem, full, err := Locate(c, n)
					if err != nil {
						return nil, err
					}
					cl.Locator = full
					if real := resolved[pt.Parent]; real != "" && real != pt.Parent {
						cl.Resolved = filepath.Join(real, elem, pt.Rest)
					}
				}
				out = append(out, cl)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.App != b.App {
			return a.App < b.App
		}
		if a.Instance != b.Instance {
			return a.Instance < b.Instance
		}
		return a.Component < b.Component
	})
	return out, nil
}

// checkClaims returns a *ClaimError for the first claim of app/instance
// (any instance of app when instance is empty) that another claim
// shares, contains or lies in. Claims are grouped by family (paths,
// databases, units): the family is the first element of each key.
func checkClaims(claims []Claim, family map[string]string, app, instance string) error {
	type owner struct {
		c   Claim
		key string
	}
	keys := func(c Claim) []string {
		f := family[c.App+"\x00"+c.Component]
		out := []string{f + "\x00" + c.Locator}
		if c.Resolved != "" {
			out = append(out, f+"\x00"+c.Resolved)
		}
		return out
	}
	byKey := map[string][]Claim{}
	for _, c := range claims {
		for _, k := range keys(c) {
			byKey[k] = append(byKey[k], c)
		}
	}
	mine := func(c Claim) bool { return c.App == app && (instance == "" || c.Instance == instance) }
	for _, c := range claims {
		for _, k := range keys(c) {
			for _, d := range byKey[k] {
				if !d.samePair(c) && (mine(c) || mine(d)) {
					return &ClaimError{A: c, B: d, Relation: Same}
				}
			}
			if !strings.HasPrefix(k, "path\x00") {
				continue
			}
			// Every ancestor of a path: a claim there contains c.
			for p := filepath.Dir(k); len(p) > len("path\x00/"); p = filepath.Dir(p) {
				for _, d := range byKey[p] {
					if !d.samePair(c) && (mine(c) || mine(d)) {
						return &ClaimError{A: d, B: c, Relation: AContains}
					}
				}
			}
		}
	}
	return nil
}

// checkHost refuses, at run time, an instance (any instance of l when name
// is empty) whose locators another (instance, component) pair of the host
// also claims or contains, or lies in.
func (l *Layout) checkHost(ctx context.Context, s *scan, name string) error {
	claims, err := l.hostClaims(ctx, s, name)
	if err != nil {
		return err
	}
	family := map[string]string{}
	for _, ly := range append([]*Layout{l}, l.Others...) {
		for _, c := range ly.Components {
			family[ly.App+"\x00"+c.Name] = c.Family()
		}
	}
	return checkClaims(claims, family, l.App, name)
}
