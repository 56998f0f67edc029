package kind

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"pgregory.net/rapid"
)

// MatchAll keeps exactly the strings Match accepts, names in order.
func TestTemplate_MatchAllIsMatchOfEach(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tpl := NewTemplate(rapid.StringMatching(`[a-z_]{0,4}`).Draw(t, "prefix") + Placeholder + rapid.StringMatching(`[a-z_]{0,3}`).Draw(t, "suffix"))
		in := rapid.SliceOf(rapid.StringMatching(`[a-z_]{0,9}`)).Draw(t, "in")
		var want []string
		for _, s := range in {
			if n, ok := tpl.Match(s); ok {
				want = append(want, n)
			}
		}
		assert.Equal(t, want, tpl.MatchAll(slices.Values(in)))
	})
}

func TestShortID(t *testing.T) {
	assert.Equal(t, "1a2b3c4d", ShortID("20260101T000000.000000Z-1a2b3c4d"))
	assert.Equal(t, "c", ShortID("a-b-c"))
	assert.Equal(t, "", ShortID("a-"))
	assert.Equal(t, "nodash", ShortID("nodash"))
}
