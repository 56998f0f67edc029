package backup

import "github.com/fleetsafe/fleetsafe/pkg/instance"

// FormatPGCustom is a pg_dump -Fc file; its structural check is
// pgdump.Verify (file.go), its restore test the postgresql kind's
// (kind.RestoreTester), and its header names the database it was made
// from: registered here so that verify.go tests no component type.
const FormatPGCustom = "pg_custom"

func init() {
	registerNamedFormat(namedFormat{format: FormatPGCustom, componentType: instance.TypePostgreSQL, name: headerDatabase})
}
