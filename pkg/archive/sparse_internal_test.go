package archive

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"pgregory.net/rapid"
)

// TestSparseWriter_WritesExactlyWhatItIsGiven: whatever runs of zeros and
// data, and whatever the sizes of the writes, the file holds exactly the
// bytes written, with its full size (a trailing hole included).
func TestSparseWriter_WritesExactlyWhatItIsGiven(t *testing.T) {
	dir := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		var want []byte
		for _, run := range rapid.SliceOfN(rapid.IntRange(0, 3*sparseBlock), 0, 12).Draw(rt, "runs") {
			if rapid.Bool().Draw(rt, "zeros") {
				want = append(want, make([]byte, run)...)
			} else {
				want = append(want, bytes.Repeat([]byte{byte(run%255 + 1)}, run)...)
			}
		}
		p := filepath.Join(dir, "f")
		f, err := os.Create(p)
		if err != nil {
			rt.Fatal(err)
		}
		defer f.Close()
		w := &sparseWriter{f: f}
		rest := want
		for len(rest) > 0 {
			n := min(len(rest), rapid.IntRange(1, 2*sparseBlock+7).Draw(rt, "write"))
			if k, err := w.Write(rest[:n]); err != nil || k != n {
				rt.Fatalf("write %d: %d, %v", n, k, err)
			}
			rest = rest[n:]
		}
		if err := w.flush(); err != nil {
			rt.Fatal(err)
		}
		if err := f.Truncate(w.off); err != nil {
			rt.Fatal(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			rt.Fatal(err)
		}
		got, err := io.ReadAll(f)
		if err != nil {
			rt.Fatal(err)
		}
		if w.off != int64(len(want)) || !bytes.Equal(got, want) {
			rt.Fatalf("file holds %d bytes (off %d), %d were written; equal: %v", len(got), w.off, len(want), bytes.Equal(got, want))
		}
	})
}
