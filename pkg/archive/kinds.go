package archive

import "github.com/fleetsafe/fleetsafe/pkg/kind"

// ShapeOf is the archive shape of a component type, kind.None for an
// unknown one.
func ShapeOf(typ string) kind.Shape {
	if k, ok := kind.Lookup(typ); ok {
		return k.Shape()
	}
	return kind.None
}
