package backup

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/streamguard"
)

// UnsafePlainDumpError is a plain dump that a restore test refuses to feed
// to psql: it holds something a pg_dump of one database never holds and
// that would act beyond the scratch database (another database, roles,
// the server's files or programs, psql's own commands).
type UnsafePlainDumpError struct {
	File string
	Line int
	What string
}

func (e *UnsafePlainDumpError) Error() string {
	return fmt.Sprintf("%s line %d: %s; the restore test did not run it", e.File, e.Line, e.What)
}

// Hint tells the operator what to do.
func (e *UnsafePlainDumpError) Hint() string {
	return "a plain dump of one database made by pg_dump (without --create or --clean) holds none of this: check who wrote the file"
}

// forbiddenSQL are statements and calls that reach beyond the database a
// plain dump is restored into. They are looked for in each whole
// statement without its comments, string literals included (EXECUTE
// 'COPY … FROM PROGRAM …').
var forbiddenSQL = []struct {
	re   *regexp.Regexp
	what string
}{
	{regexp.MustCompile(`(?i)^\s*(CREATE|DROP|ALTER)\s+(DATABASE|ROLE|USER|GROUP|TABLESPACE|SUBSCRIPTION|SERVER|EVENT\s+TRIGGER)\b`), "a statement on another database, a role or the server"},
	{regexp.MustCompile(`(?i)\bALTER\s+SYSTEM\b`), "ALTER SYSTEM"},
	{regexp.MustCompile(`(?i)\b(FROM|TO)\s+PROGRAM\b`), "a COPY to or from a program"},
	{regexp.MustCompile(`(?i)\b(dblink\w*|postgres_fdw|file_fdw|adminpack)\b`), "a link to another database or the server's files"},
	{regexp.MustCompile(`(?i)\b(lo_import|lo_export|pg_read_file|pg_read_binary_file|pg_ls_dir|pg_stat_file|pg_file_write|pg_terminate_backend|pg_reload_conf)\s*\(`), "a call on the server's files or sessions"},
}

// copyFromStdin starts the data lines of a COPY, ended by a line "\.".
var copyFromStdin = regexp.MustCompile(`(?is)^\s*COPY\s.*\bFROM\s+stdin\b`)

// guardPlainSQL passes a plain dump on to psql one whole statement at a
// time, after checking it: psql's backslash commands (but \restrict and
// \unrestrict, which pg_dump writes), and the statements of forbiddenSQL,
// stop the stream before they are sent. COPY data lines pass unchecked.
// The returned function, called once psql is done (streamguard.Start),
// reports the refusal or the dump unreadable, if any.
func guardPlainSQL(file string, src io.Reader) (io.Reader, func() error) {
	return streamguard.Start(func(dst io.Writer) error { return scanPlainSQL(file, src, dst) })
}

func scanPlainSQL(file string, src io.Reader, dst io.Writer) error {
	br := bufio.NewReaderSize(src, 1<<16)
	var stmt strings.Builder
	var lx sqlLexer
	inData := false
	for n := 1; ; n++ {
		line, rerr := br.ReadString('\n')
		if line == "" && rerr != nil {
			if rerr == io.EOF {
				rerr = nil
			}
			if stmt.Len() > 0 {
				if err := checkStatement(file, n-1, lx.code.String()); err != nil {
					return err
				}
				if _, err := io.WriteString(dst, stmt.String()); err != nil {
					return err
				}
			}
			return rerr
		}
		if inData {
			if _, err := io.WriteString(dst, line); err != nil {
				return err
			}
			if strings.TrimRight(line, "\r\n") == `\.` {
				inData = false
			}
			continue
		}
		ends, meta := lx.feed(line)
		if meta != "" {
			return &UnsafePlainDumpError{File: file, Line: n, What: fmt.Sprintf("the psql command %q", meta)}
		}
		stmt.WriteString(line)
		if !ends {
			continue
		}
		s, code := stmt.String(), lx.code.String()
		if err := checkStatement(file, n, code); err != nil {
			return err
		}
		if _, err := io.WriteString(dst, s); err != nil {
			return err
		}
		stmt.Reset()
		lx.code.Reset()
		inData = copyFromStdin.MatchString(code)
	}
}

func checkStatement(file string, line int, s string) error {
	for _, f := range forbiddenSQL {
		if f.re.MatchString(s) {
			return &UnsafePlainDumpError{File: file, Line: line, What: fmt.Sprintf("%s (%.80q)", f.what, strings.TrimSpace(s))}
		}
	}
	return nil
}

// sqlLexer follows quotes across the lines of a statement: single quotes,
// double-quoted identifiers, dollar quotes and comments.
type sqlLexer struct {
	code           strings.Builder // the statement without its comments
	single, double bool
	dollar         string
	block          int // nesting of /* */ comments
}

var dollarTag = regexp.MustCompile(`^\$[A-Za-z_][A-Za-z_0-9]*\$|^\$\$`)

// feed reads one line; it returns whether the line ends a statement (a
// ';' outside quotes is its last non-blank character) and the first psql
// backslash command outside quotes, other than \restrict and \unrestrict
// at the start of a line.
func (l *sqlLexer) feed(line string) (ends bool, meta string) {
	lastSemi := false
	defer l.code.WriteByte('\n')
	for i := 0; i < len(line); i++ {
		c := line[i]
		if l.block == 0 && !(l.dollar == "" && !l.single && !l.double && (strings.HasPrefix(line[i:], "--") || strings.HasPrefix(line[i:], "/*"))) && c != '\n' {
			l.code.WriteByte(c)
		}
		switch {
		case l.block > 0:
			if strings.HasPrefix(line[i:], "*/") {
				l.block--
				i++
			} else if strings.HasPrefix(line[i:], "/*") {
				l.block++
				i++
			}
			continue
		case l.dollar != "":
			if strings.HasPrefix(line[i:], l.dollar) {
				i += len(l.dollar) - 1
				l.dollar = ""
			}
			continue
		case l.single:
			if c == '\'' {
				l.single = false
			}
			continue
		case l.double:
			if c == '"' {
				l.double = false
			}
			continue
		}
		switch c {
		case '\'':
			l.single = true
		case '"':
			l.double = true
		case '$':
			if tag := dollarTag.FindString(line[i:]); tag != "" {
				l.dollar = tag
				i += len(tag) - 1
			}
		case '-':
			if strings.HasPrefix(line[i:], "--") {
				i = len(line)
				continue
			}
		case '/':
			if strings.HasPrefix(line[i:], "/*") {
				l.block++
				i++
			}
		case '\\':
			word := line[i:]
			if j := strings.IndexAny(word, " \t\r\n"); j >= 0 {
				word = word[:j]
			}
			if strings.TrimSpace(line[:i]) == "" && (word == `\restrict` || word == `\unrestrict`) {
				return false, ""
			}
			return false, word
		case ';':
			lastSemi = true
			continue
		case ' ', '\t', '\r', '\n':
			continue
		}
		lastSemi = false
	}
	inQuote := l.single || l.double || l.dollar != "" || l.block > 0
	return lastSemi && !inQuote, ""
}
