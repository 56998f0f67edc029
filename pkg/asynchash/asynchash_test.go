package asynchash

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"pgregory.net/rapid"
)

// TestHash_SameAsSha256: whatever the pieces written, the digest is the
// sha256 of their concatenation; Sum is stable and later writes change
// nothing.
func TestHash_SameAsSha256(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pieces := rapid.SliceOf(rapid.SliceOfN(rapid.Byte(), 0, 600<<10)).Draw(t, "pieces")
		a := New()
		h := sha256.New()
		for _, p := range pieces {
			_, _ = a.Write(p)
			h.Write(p)
		}
		want := hex.EncodeToString(h.Sum(nil))
		if got := a.Sum(); got != want {
			t.Fatalf("digest %s, want %s", got, want)
		}
		_, _ = a.Write([]byte("late"))
		if got := a.Sum(); got != want {
			t.Fatalf("digest changed after Sum: %s", got)
		}
	})
}
