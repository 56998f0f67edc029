package backup

import (
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestLiteralPrefix_ListsEveryMatch: listing a bucket by the literal
// prefix of a key glob never misses a key the glob matches (the prefix
// is a prefix of every match), for globs with wildcards, classes and
// escapes anywhere. Each key is drawn as a match of its glob.
func TestLiteralPrefix_ListsEveryMatch(t *testing.T) {
	// token: its glob text and the texts it matches.
	tokens := map[string][]string{
		"a": {"a"}, "b": {"b"}, "-": {"-"}, "/": {"/"}, "{": {"{"}, ".": {"."},
		"*": {"", "a", "ab-", "*", "."}, "?": {"a", "?", "-"}, "[ab]": {"a", "b"}, "[^a]": {"b", "-", "*"},
		`\*`: {"*"}, `\a`: {"a"}, `\[`: {"["},
	}
	var names []string
	for k := range tokens {
		names = append(names, k)
	}
	rapid.Check(t, func(t *rapid.T) {
		toks := rapid.SliceOfN(rapid.SampledFrom(names), 1, 10).Draw(t, "glob")
		var glob, key strings.Builder
		for i, tok := range toks {
			glob.WriteString(tok)
			key.WriteString(rapid.SampledFrom(tokens[tok]).Draw(t, "part"+string(rune('0'+i))))
		}
		ok, err := filepath.Match(glob.String(), key.String())
		if err != nil || !ok {
			t.Fatalf("test generator: %q does not match %q (%v)", glob.String(), key.String(), err)
		}
		if p := literalPrefix(glob.String()); !strings.HasPrefix(key.String(), p) {
			t.Fatalf("glob %q matches %q, but its literal prefix %q does not start it", glob.String(), key.String(), p)
		}
	})
	for glob, want := range map[string]string{"p/{x}/db-*.dump": "p/{x}/db-", `a\*b/*`: "a*b/", "*": "", "a/b?c": "a/b", "x[ab]": "x"} {
		if got := literalPrefix(glob); got != want {
			t.Errorf("literalPrefix(%q) = %q, want %q", glob, got, want)
		}
	}
}
