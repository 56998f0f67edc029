// Package ansible implements the binary-module protocol of ansible-core once
// for every fleetsafe module: it reads the JSON args file, validates and
// coerces parameters against an argument spec the way AnsibleModule does,
// runs the module's logic and turns its outcome (or a panic) into the one
// JSON object ansible-core expects on stdout.
package ansible

// Type is the declared type of a module parameter, with the names and
// coercion rules of ansible-core's argument spec.
type Type string

// Parameter types understood by Spec.
const (
	TypeStr   Type = "str"
	TypeBool  Type = "bool"
	TypeInt   Type = "int"
	TypeFloat Type = "float"
	TypePath  Type = "path"
	TypeList  Type = "list"
	TypeDict  Type = "dict"
	TypeRaw   Type = "raw"
)

// Param describes one module parameter.
type Param struct {
	Type     Type
	Required bool
	Default  any
	Choices  []string
	NoLog    bool
	Aliases  []string
	// Elements is the type of each element when Type is TypeList.
	Elements Type
}

// Spec is a module's argument spec.
type Spec struct {
	Params            map[string]Param
	MutuallyExclusive [][]string
	RequiredOneOf     [][]string
}

// Merge returns a copy of s with the parameters of other added; it is how
// modules share common parameter groups (layout, PostgreSQL connection).
func (s Spec) Merge(other Spec) Spec {
	out := Spec{Params: make(map[string]Param, len(s.Params)+len(other.Params))}
	for k, v := range s.Params {
		out.Params[k] = v
	}
	for k, v := range other.Params {
		out.Params[k] = v
	}
	out.MutuallyExclusive = append(append(out.MutuallyExclusive, s.MutuallyExclusive...), other.MutuallyExclusive...)
	out.RequiredOneOf = append(append(out.RequiredOneOf, s.RequiredOneOf...), other.RequiredOneOf...)
	return out
}
