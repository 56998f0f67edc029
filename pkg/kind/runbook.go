package kind

import (
	"fmt"
	"strings"
)

// RunbookTar is the tar invocation every RESTORE.md block uses: zstd
// through tar, so that a failing zstd fails the command (a pipe would hide
// it). Files are extracted with -p, --numeric-owner and every extended
// attribute the archive records (ACLs are the system.posix_acl_*
// attributes).
const RunbookTar = "tar --use-compress-program=zstd"

// WriteRefusal opens the if/else of a RESTORE.md block that refuses when
// dest exists (a dangling symlink counts as existing).
func WriteRefusal(b *strings.Builder, dest, advice string) {
	fmt.Fprintf(b, "if [ -e %s ] || [ -L %s ]; then\n", ShellQuote(dest), ShellQuote(dest))
	fmt.Fprintf(b, "  printf 'REFUSED: %%s exists; %s\\n' %s >&2\n", advice, ShellQuote(dest))
	b.WriteString("  false\nelse\n")
}

// ShellQuote quotes s as one bash word: single quotes, or ANSI-C quoting
// ($'...') when s holds control characters, so that a newline in a path
// can never end a Markdown code block or a command.
func ShellQuote(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return ansiCQuote(s)
		}
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func ansiCQuote(s string) string {
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString("'")
	return b.String()
}

// OneLine makes free text (a reason, a path shown in prose) safe to print
// in Markdown prose: control characters become spaces and backticks
// quotes, so that it can never open or close a code block.
func OneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f:
			return ' '
		case r == '`':
			return '\''
		}
		return r
	}, s)
}

// Plural is one when n is 1, else many: the ending of a counted word.
func Plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
