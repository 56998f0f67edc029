package mariadb

import (
	"bytes"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// autoIncReference is what autoIncFilter promises, line by line on the
// whole input: a complete line starting with ") ENGINE=" (or a last line
// without its newline) loses its AUTO_INCREMENT options when it is at
// most maxOptionsLine bytes; every other byte is kept.
func autoIncReference(in []byte) []byte {
	var out []byte
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		line := in
		if i >= 0 {
			line = in[:i+1]
		}
		in = in[len(line):]
		if len(line) <= maxOptionsLine && tableOptionsLine.Match(line) {
			line = autoIncOption.ReplaceAll(line, nil)
		}
		out = append(out, line...)
	}
	return out
}

// TestAutoIncFilter_AnyChunking: whatever the dump's lines and however
// the pipe cuts them, the filter writes exactly the reference's bytes.
func TestAutoIncFilter_AnyChunking(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pieces := []string{"CREATE TABLE `t` (\n", "  `id` int(11) NOT NULL AUTO_INCREMENT,\n",
			") ENGINE=InnoDB AUTO_INCREMENT=16 DEFAULT CHARSET=utf8mb4;\n", ") ENGINE=InnoDB DEFAULT CHARSET=latin1;\n",
			"INSERT INTO `t` VALUES (1,'a'),(2,') ENGINE=x AUTO_INCREMENT=3');\n", ")", "\n", ") ENGINE=Aria AUTO_INCREMENT=7",
			"x AUTO_INCREMENT=9\n", "", ")) ENGINE=InnoDB AUTO_INCREMENT=2\n"}
		var in []byte
		for _, p := range rapid.SliceOfN(rapid.SampledFrom(pieces), 0, 30).Draw(t, "lines") {
			in = append(in, p...)
		}
		if rapid.Bool().Draw(t, "long options line") {
			in = append(in, []byte(") ENGINE=InnoDB AUTO_INCREMENT=5 COMMENT='"+strings.Repeat("z", maxOptionsLine)+"'\n")...)
		}
		var out bytes.Buffer
		f := &autoIncFilter{w: &out}
		for rest := in; len(rest) > 0; {
			n := rapid.IntRange(1, max(1, len(rest))).Draw(t, "chunk")
			if _, err := f.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if want := autoIncReference(in); !bytes.Equal(out.Bytes(), want) {
			got := out.Bytes()
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			t.Fatalf("filtered %d bytes, want %d; first difference at %d: got %q, want %q", len(got), len(want), i,
				got[max(0, i-40):min(len(got), i+40)], want[max(0, i-40):min(len(want), i+40)])
		}
	})
}
