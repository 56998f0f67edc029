package instance

import "github.com/fleetsafe/fleetsafe/pkg/kind"

// Join composes a path under parent from elements that must each be local
// (no separators of their own, no "..", not absolute). It is the one place
// where fleetsafe builds a path from an instance name.
func Join(parent string, elems ...string) (string, error) { return kind.Join(parent, elems...) }

// Locate returns the path of a dir or file component for an instance name
// and the pieces it is made of.
func Locate(c Component, name string) (pt PathTemplate, elem, full string, err error) {
	return kind.LocatePath(c, name)
}
