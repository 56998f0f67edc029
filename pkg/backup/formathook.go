package backup

import (
	"io"
	"slices"
)

// namedFormat is a backup format whose files name, inside, the component
// they were made from (a pg_custom dump's header names its database), as
// registered by the file of the format (pgcustom.go): a rule of that
// format (or of format any) backing up a component of componentType has
// its files split by that name, so that another instance's dump is never
// credited to this one, and the newest file's name is checked against the
// instance's. verify.go asks this registry instead of testing a component
// type itself.
type namedFormat struct {
	// format is the rule format (layout backups[].format).
	format string
	// componentType is the component type whose backups it holds.
	componentType string
	// name reads the component's name recorded in the header of a file
	// (or object) read from its start, and false when it is not of this
	// format or cannot be read.
	name func(r io.Reader) (string, bool)
}

var namedFormats []namedFormat

// registerNamedFormat adds a format to the registry; it is called from
// init, and panics on a second registration of one format.
func registerNamedFormat(nf namedFormat) {
	if nf.format == "" || nf.componentType == "" || nf.name == nil {
		panic("backup: incomplete named format " + nf.format)
	}
	if slices.ContainsFunc(namedFormats, func(o namedFormat) bool { return o.format == nf.format }) {
		panic("backup: named format " + nf.format + " registered twice")
	}
	namedFormats = append(namedFormats, nf)
}

// namedBy returns the format whose files name a component of type typ
// read by a rule of format ruleFormat, and whether the type has one at
// all (then the component's expanded template is the name to compare).
// A rule of format any is read by the type's named format too.
func namedBy(typ, ruleFormat string) (nf namedFormat, applies, typed bool) {
	for _, o := range namedFormats {
		if o.componentType != typ {
			continue
		}
		typed = true
		if ruleFormat == o.format || ruleFormat == "any" {
			return o, true, true
		}
	}
	return namedFormat{}, false, typed
}
