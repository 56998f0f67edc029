package softdelete

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"testing/quick"
)

// Every string without NUL (which no path or argument can hold) survives
// shellQuote and bash as exactly one word, byte for byte.
func TestShellQuote_OneWordExactly(t *testing.T) {
	check := func(raw []byte) bool {
		s := strings.ReplaceAll(string(raw), "\x00", "")
		for _, v := range []string{s, "\n" + s + "'`$(x)`\\", "```\n" + s} {
			out, err := exec.Command("/bin/bash", "-c", "printf '%s\\0' "+shellQuote(v)+" end").Output()
			if err != nil || !bytes.Equal(out, []byte(v+"\x00end\x00")) {
				t.Logf("%q quoted as %s gave %q (%v)", v, shellQuote(v), out, err)
				return false
			}
			if strings.Contains(shellQuote(v), "\n") {
				t.Logf("%q quoted over two lines", v)
				return false
			}
		}
		return true
	}
	if err := quick.Check(check, &quick.Config{MaxCount: 60}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "'", "\\", "$'x'", "a\x7fb", "\xff\xfe", "é\n"} {
		if !check([]byte(s)) {
			t.Fatalf("%q", s)
		}
	}
}
