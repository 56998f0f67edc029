package pgdump

import (
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestLineCounter_RowsWhateverTheWrites: COPY text rows (values escaped as
// COPY escapes them) followed by pg_dump's end of data, or not, written in
// arbitrary pieces, count exactly the rows.
func TestLineCounter_RowsWhateverTheWrites(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		values := rapid.SliceOf(rapid.SampledFrom([]string{"", `\.`, "\n", `\`, "a", "\\.\n\n\n", "x\ny"})).Draw(t, "values")
		var b strings.Builder
		for _, v := range values {
			v = strings.ReplaceAll(v, `\`, `\\`)
			v = strings.ReplaceAll(v, "\n", `\n`)
			b.WriteString(v + "\n")
		}
		if rapid.Bool().Draw(t, "end") {
			b.WriteString(copyEnd)
		}
		data := b.String()
		c := &lineCounter{}
		for len(data) > 0 {
			n := rapid.IntRange(1, len(data)).Draw(t, "piece")
			_, _ = c.Write([]byte(data[:n]))
			data = data[n:]
		}
		if got := c.rows(); got != int64(len(values)) {
			t.Fatalf("%d rows counted, %d written", got, len(values))
		}
	})
}
