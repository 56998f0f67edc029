package pgdump

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// plainReadSize is PlainRows' read buffer (a variable so that tests can
// make lines longer than it).
var plainReadSize = 256 << 10

// PlainRows counts the rows of each table's data in a plain-format dump
// (pg_dump --format=plain, the COPY form it writes by default): the lines
// between each "COPY schema.table (columns) FROM stdin;" and its "\."
// line. A dump written with --inserts holds no COPY and counts nothing
// (an empty map). An unterminated COPY is an error.
func PlainRows(r io.Reader) (map[Table]int64, error) {
	br := bufio.NewReaderSize(r, plainReadSize)
	rows := map[Table]int64{}
	var in *Table
	line := 0
	for {
		b, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: a COPY line is kept whole
			// (up to 1 MiB), a data line is only counted.
			b = bytes.Clone(b)
			for err == bufio.ErrBufferFull {
				var more []byte
				more, err = br.ReadSlice('\n')
				if in == nil && len(b) < 1<<20 {
					b = append(b, more...)
				}
			}
		}
		if len(b) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		line++
		text := strings.TrimSuffix(string(b), "\n")
		switch {
		case in != nil && text == `\.`:
			in = nil
		case in != nil:
			rows[*in]++
		case strings.HasPrefix(text, "COPY ") && strings.HasSuffix(text, " FROM stdin;"):
			t, ok := copyTable(text)
			if !ok {
				return nil, fmt.Errorf("line %d: a COPY whose table cannot be read: %.80q", line, text)
			}
			in = &t
			rows[t] += 0
		}
		if err == io.EOF {
			break
		}
	}
	if in != nil {
		return nil, fmt.Errorf("the COPY data of %s has no end (the dump is cut)", in)
	}
	return rows, nil
}

// copyTable reads the table of a COPY line: COPY schema.table [(cols)]
// FROM stdin;, each name plain or double-quoted.
func copyTable(line string) (Table, bool) {
	s := strings.TrimPrefix(line, "COPY ")
	schema, s, ok := ident(s)
	if !ok || !strings.HasPrefix(s, ".") {
		return Table{}, false
	}
	name, s, ok := ident(s[1:])
	if !ok || !(strings.HasPrefix(s, " (") || strings.HasPrefix(s, " FROM stdin;")) {
		return Table{}, false
	}
	return Table{Schema: schema, Name: name}, true
}

// ident reads one identifier at the start of s, as pg_dump writes it:
// plain (lower case, digits, _ and $) or double-quoted with "" for ".
func ident(s string) (string, string, bool) {
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			return b.String(), s[i+1:], b.Len() > 0
		}
		return "", "", false
	}
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_' || s[i] == '$' || s[i] >= 0x80) {
		i++
	}
	return s[:i], s[i:], i > 0
}
