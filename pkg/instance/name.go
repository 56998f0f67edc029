package instance

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
)

// ValidateName refuses any name that is not one exact, safe instance name,
// before anything else happens. The checks do not depend on the layout's
// name_pattern, which comes after them: a permissive pattern never lets a
// glob, a path or whitespace through.
func (l *Layout) ValidateName(name string) error {
	if err := ValidateName(name, l.NamePattern); err != nil {
		return err
	}
	for _, c := range l.Components {
		if k, ok := c.Kind(); ok {
			if reason := k.CheckName(c, name); reason != "" {
				return &InvalidNameError{Name: name, Reason: reason}
			}
		}
	}
	return nil
}

// MaxDatabaseName is the longest database name PostgreSQL keeps whole
// (NAMEDATALEN - 1).
const MaxDatabaseName = postgresql.MaxDatabaseName

// ValidateName applies the hard refusals to name, then pattern when it is
// not nil (where no layout is at hand, as in purge).
func ValidateName(name string, pattern *regexp.Regexp) error {
	refuse := func(reason string) error { return &InvalidNameError{Name: name, Reason: reason} }
	switch {
	case name == "":
		return refuse("the name is empty")
	case !utf8.ValidString(name):
		return refuse("the name is not valid UTF-8")
	case strings.ContainsFunc(name, unicode.IsControl):
		return refuse("the name contains control characters")
	case strings.ContainsFunc(name, unicode.IsSpace):
		return refuse("the name contains whitespace")
	case name == "." || name == "..":
		return refuse("the name is a relative path element")
	case strings.ContainsAny(name, `/\`):
		return refuse("the name contains a path separator")
	case strings.ContainsAny(name, "*?[]{}"):
		return refuse("the name contains glob characters; fleetsafe only acts on one exact name")
	case strings.ContainsAny(name, ",;|&$`'\"<>()!~#%"):
		return refuse("the name contains shell or list characters")
	case strings.HasPrefix(name, "."):
		return refuse("the name starts with a dot; hidden entries are never instances")
	case strings.HasPrefix(name, "-"):
		return refuse("the name starts with a dash")
	case len(name) > 255:
		return refuse("the name is longer than 255 bytes")
	case pattern != nil && !pattern.MatchString(name):
		return refuse("the name does not match the layout's name_pattern " + pattern.String())
	}
	return nil
}
