package ansible

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Params holds a module's validated and coerced parameters. Every parameter
// of the spec is present: absent ones hold their default or nil.
type Params map[string]any

// Has reports whether the parameter was given or has a non-nil default.
func (p Params) Has(name string) bool { return p[name] != nil }

// String returns a str or path parameter, "" when unset.
func (p Params) String(name string) string {
	s, _ := p[name].(string)
	return s
}

// Bool returns a bool parameter, false when unset.
func (p Params) Bool(name string) bool {
	b, _ := p[name].(bool)
	return b
}

// Int returns an int parameter, 0 when unset.
func (p Params) Int(name string) int64 {
	i, _ := p[name].(int64)
	return i
}

// Float returns a float parameter, 0 when unset.
func (p Params) Float(name string) float64 {
	f, _ := p[name].(float64)
	return f
}

// Dict returns a dict parameter, nil when unset.
func (p Params) Dict(name string) map[string]any {
	m, _ := p[name].(map[string]any)
	return m
}

// List returns a list parameter, nil when unset.
func (p Params) List(name string) []any {
	l, _ := p[name].([]any)
	return l
}

// Strings returns a list parameter whose elements are strings.
func (p Params) Strings(name string) []string {
	l := p.List(name)
	if l == nil {
		return nil
	}
	out := make([]string, 0, len(l))
	for _, v := range l {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// ParamError is a parameter validation failure, worded as ansible-core words
// its own.
type ParamError struct{ Msg string }

func (e *ParamError) Error() string { return e.Msg }

// Validate checks raw module arguments against spec, for the module called
// module, and returns coerced parameters. Unknown parameters, missing
// required ones, bad types, values outside choices, mutually exclusive and
// required-one-of groups are all refused.
func Validate(module string, spec Spec, raw map[string]any) (Params, error) {
	aliasOf := map[string]string{}
	for name, p := range spec.Params {
		aliasOf[name] = name
		for _, a := range p.Aliases {
			aliasOf[a] = name
		}
	}

	var unknown []string
	given := map[string]any{}
	givenAs := map[string]string{}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		canon, ok := aliasOf[k]
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		if first, dup := givenAs[canon]; dup {
			return nil, &ParamError{fmt.Sprintf("parameter %s was given twice, as %s and as %s; give one", canon, first, k)}
		}
		given[canon], givenAs[canon] = raw[k], k
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, &ParamError{fmt.Sprintf("Unsupported parameters for (%s) module: %s. Supported parameters include: %s.",
			module, strings.Join(unknown, ", "), supported(spec))}
	}

	for _, group := range spec.MutuallyExclusive {
		var set []string
		for _, name := range group {
			if given[name] != nil {
				set = append(set, name)
			}
		}
		if len(set) > 1 {
			return nil, &ParamError{"parameters are mutually exclusive: " + strings.Join(group, "|")}
		}
	}
	for _, group := range spec.RequiredOneOf {
		if !slices.ContainsFunc(group, func(n string) bool { return given[n] != nil }) {
			return nil, &ParamError{"one of the following is required: " + strings.Join(group, ", ")}
		}
	}

	names := make([]string, 0, len(spec.Params))
	for name := range spec.Params {
		names = append(names, name)
	}
	sort.Strings(names)

	var missing []string
	out := Params{}
	for _, name := range names {
		p := spec.Params[name]
		v, ok := given[name]
		if !ok || v == nil {
			if p.Required {
				missing = append(missing, name)
				continue
			}
			out[name] = p.Default
			continue
		}
		c, err := coerce(p.Type, v)
		if err != nil {
			return nil, &ParamError{fmt.Sprintf("argument '%s' %v", name, err)}
		}
		if p.Type == TypeList && p.Elements != "" {
			list := c.([]any)
			for i, e := range list {
				ce, err := coerce(p.Elements, e)
				if err != nil {
					return nil, &ParamError{fmt.Sprintf("elements of argument '%s': element %d %v", name, i, err)}
				}
				list[i] = ce
			}
		}
		if len(p.Choices) > 0 {
			if err := checkChoice(name, p.Choices, c); err != nil {
				return nil, err
			}
		}
		out[name] = c
	}
	if len(missing) > 0 {
		return nil, &ParamError{"missing required arguments: " + strings.Join(missing, ", ")}
	}
	return out, nil
}

func checkChoice(name string, choices []string, v any) error {
	vals := []any{v}
	if l, ok := v.([]any); ok {
		vals = l
	}
	for _, x := range vals {
		s, _ := toStr(x)
		if !slices.Contains(choices, s) {
			return &ParamError{fmt.Sprintf("value of %s must be one of: %s, got: %s", name, strings.Join(choices, ", "), s)}
		}
	}
	return nil
}

func supported(spec Spec) string {
	var out []string
	for name, p := range spec.Params {
		s := name
		if len(p.Aliases) > 0 {
			s += " (" + strings.Join(p.Aliases, ", ") + ")"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
