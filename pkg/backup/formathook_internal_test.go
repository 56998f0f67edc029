package backup

import (
	"os"
	"strings"
	"testing"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// TestNamedFormats_Registry: pg_custom is registered by its own file for
// postgresql components (its own rules and format any), no other type or
// format is split by a header name, and a second registration panics.
func TestNamedFormats_Registry(t *testing.T) {
	for _, c := range []struct {
		typ, format    string
		applies, typed bool
	}{
		{instance.TypePostgreSQL, FormatPGCustom, true, true},
		{instance.TypePostgreSQL, "any", true, true},
		{instance.TypePostgreSQL, "pg_plain", false, true},
		{"dir", "tar", false, false},
		{"dir", "any", false, false},
		{"mysql", FormatMySQLDump, false, false},
	} {
		nf, applies, typed := namedBy(c.typ, c.format)
		if applies != c.applies || typed != c.typed {
			t.Errorf("namedBy(%s, %s) = applies %v typed %v, want %v %v", c.typ, c.format, applies, typed, c.applies, c.typed)
		}
		if applies && nf.format != FormatPGCustom {
			t.Errorf("namedBy(%s, %s) gave format %q", c.typ, c.format, nf.format)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("a second registration of pg_custom did not panic")
		}
	}()
	registerNamedFormat(namedFormat{format: FormatPGCustom, componentType: "x", name: headerDatabase})
}

// TestVerify_NoComponentTypeSwitch: verify.go asks the format registry
// and names no component type of its own.
func TestVerify_NoComponentTypeSwitch(t *testing.T) {
	b, err := os.ReadFile("verify.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"instance.Type", `"postgresql"`, `== "pg_custom"`} {
		if strings.Contains(string(b), bad) {
			t.Errorf("verify.go contains %s: a format's specific check belongs to its registered hook", bad)
		}
	}
}
