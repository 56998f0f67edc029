package mariadb

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/streamguard"
)

// UnsafeDumpError is a dump that a restore test refuses to feed to the
// mariadb client: it holds something a mariadb-dump of one database never
// holds and that would act beyond the scratch database (another database,
// users and privileges, the server's files or settings, the client's own
// commands).
type UnsafeDumpError struct {
	File string
	Line int
	What string
}

func (e *UnsafeDumpError) Error() string {
	return fmt.Sprintf("%s line %d: %s; the restore test did not run it", e.File, e.Line, e.What)
}

// Hint tells the operator what to do.
func (e *UnsafeDumpError) Hint() string {
	return "a mariadb-dump of one database (without --databases, --all-databases or --system) holds none of this: check who wrote the file"
}

// MaxStatement bounds one statement of a guarded dump: mariadb-dump
// writes INSERT statements of about --net-buffer-length (1 MiB).
const MaxStatement = 64 << 20

// forbiddenStatements are what a dump of one database never runs: checked
// on each whole statement without its strings and plain comments (the
// code of /*! … */ comments is kept, since the server runs it).
var forbiddenStatements = []struct {
	re   *regexp.Regexp
	what string
}{
	{regexp.MustCompile(`(?is)^\s*USE\b`), "USE of another database"},
	{regexp.MustCompile(`(?is)^\s*(CREATE|DROP|ALTER)\s+(OR\s+REPLACE\s+)?(DATABASE|SCHEMA|USER|ROLE|SERVER|TABLESPACE|LOGFILE)\b`), "a statement on a database, a user or the server"},
	{regexp.MustCompile(`(?is)^\s*(GRANT|REVOKE|RENAME\s+USER|SET\s+PASSWORD|SET\s+(DEFAULT\s+)?ROLE|INSTALL|UNINSTALL|SHUTDOWN|KILL|FLUSH|RESET|PURGE|BINLOG|HANDLER|CHANGE\s+(MASTER|REPLICATION)|(START|STOP)\s+(SLAVE|REPLICA|ALL\s+SLAVES)|LOAD\s+(DATA|XML|INDEX)|CACHE\s+INDEX|XA)\b`), "a statement on users, privileges or the server"},
	{regexp.MustCompile(`(?is)\bINTO\s+(OUTFILE|DUMPFILE)\b|\bLOAD_FILE\s*\(`), "a read or write of the server's files"},
	{regexp.MustCompile(`(?is)@@GLOBAL\b|\bSET\s+(GLOBAL|@@GLOBAL)\b|\bSET\s+STATEMENT\b`), "a change of the server's settings"},
	{regexp.MustCompile("(?is)(\\b|`)(mysql|performance_schema|information_schema|sys)`?\\s*\\."), "a reference to a system schema"},
}

// clientCommands are the mariadb client's commands that a statement may
// start with; of them a dump holds only DELIMITER.
var clientCommand = regexp.MustCompile(`(?i)^\s*(\?|clear|connect|edit|ego|exit|go|help|nopager|notee|pager|print|prompt|quit|rehash|source|status|system|tee|use|charset|warnings|nowarning)(\s|;|$)`)

var delimiterCommand = regexp.MustCompile(`(?i)^\s*delimiter\s+(\S+)\s*$`)

// definer matches the DEFINER clause of a view, routine, trigger or event.
var definer = regexp.MustCompile("(?i)\\bDEFINER\\s*=\\s*(`(?:[^`]|``)*`|'(?:[^'\\\\]|\\\\.|'')*'|[A-Za-z0-9_$.%-]+)\\s*@\\s*(`(?:[^`]|``)*`|'(?:[^'\\\\]|\\\\.|'')*'|[A-Za-z0-9_$.%-]+)")

var noBackslashEscapes = regexp.MustCompile(`(?i)NO_BACKSLASH_ESCAPES|\bsql_mode\s*:?=\s*[^'@\s]`)

// clientCharset finds SET NAMES, SET CHARACTER SET and assignments of
// character_set_client; only safeCharsets may be chosen.
var clientCharset = regexp.MustCompile(`(?i)\b(SET\s+NAMES|SET\s+CHARACTER\s+SET|SET\s+CHARSET|character_set_client\s*:?=)\s*['"]?([^\s'";*,]+)`)

var safeCharsets = map[string]bool{"utf8": true, "utf8mb3": true, "utf8mb4": true, "latin1": true, "ascii": true, "binary": true,
	"@saved_cs_client": true, "@old_character_set_client": true, "@@character_set_client": true}

// SandboxLine is the first line recent mariadb-dump releases write; it
// puts the mariadb client into sandbox mode.
const SandboxLine = `/*M!999999\- enable the sandbox mode */`

// GuardDump passes a mariadb-dump on to the mariadb client one whole
// statement at a time, after checking it: the client's commands (but
// DELIMITER), backslash commands anywhere outside strings, and the
// statements of forbiddenStatements stop the stream before they are sent;
// a statement is never sent in part, so that the client never runs a cut
// one at the end of its input. DEFINER clauses become
// DEFINER=CURRENT_USER, so that the scratch database's own user may
// create the objects. The returned function, called once the client is
// done (streamguard.Start), reports the refusal (or the failure to read
// src), if any.
//
// The guard gives a clear refusal; the boundary itself is the scratch
// user's privileges (only on the scratch database), the client's
// --sandbox and --local-infile=0 (see ScratchRestore).
func GuardDump(file string, src io.Reader) (io.Reader, func() error) {
	return streamguard.Start(func(dst io.Writer) error { return scanDump(file, src, dst) })
}

// lexState is where the lexer is inside a statement.
type lexState int

const (
	lexCode     lexState = iota
	lexSingle            // '…' with backslash escapes
	lexDouble            // "…" with backslash escapes
	lexBacktick          // `…`
	lexComment           // /* … */, not run
	lexExec              // /*! … */ or /*M! … */, run by the server
)

func scanDump(file string, src io.Reader, dst io.Writer) error {
	br := bufio.NewReaderSize(src, 1<<16)
	delim := ";"
	state := lexCode
	var stmt, code strings.Builder // raw statement; its code without strings and comments
	stmtLine := 1
	refuse := func(line int, what string) error {
		return &UnsafeDumpError{File: file, Line: line, What: what}
	}
	flush := func(line int) error {
		c := code.String()
		for _, f := range forbiddenStatements {
			if f.re.MatchString(c) {
				return refuse(stmtLine, fmt.Sprintf("%s (%.80q)", f.what, strings.TrimSpace(c)))
			}
		}
		s := stmt.String()
		if !strings.HasPrefix(strings.TrimSpace(c), "INSERT") {
			// How the client splits statements depends on these: a
			// dump may not change them under the guard's feet.
			if noBackslashEscapes.MatchString(s) {
				return refuse(stmtLine, "a change to sql_mode NO_BACKSLASH_ESCAPES, under which the client would read strings otherwise")
			}
			if m := clientCharset.FindStringSubmatch(c + " " + s); m != nil && !safeCharsets[strings.ToLower(m[2])] {
				return refuse(stmtLine, fmt.Sprintf("a client character set %q, in which a backslash may hide inside a character", m[2]))
			}
			s = definer.ReplaceAllString(s, "DEFINER=CURRENT_USER")
		}
		if _, err := io.WriteString(dst, s); err != nil {
			return err
		}
		stmt.Reset()
		code.Reset()
		stmtLine = line
		return nil
	}
	for n := 1; ; n++ {
		line, rerr := br.ReadString('\n')
		if line == "" && rerr != nil {
			if rerr != io.EOF {
				return rerr
			}
			if strings.TrimSpace(code.String()) != "" || state != lexCode {
				return refuse(stmtLine, "a statement without its delimiter at the end of the file (cut?)")
			}
			return flush(n)
		}
		if n == 1 && strings.TrimRight(line, " \r\n") == SandboxLine {
			if _, err := io.WriteString(dst, line); err != nil {
				return err
			}
			stmtLine = 2
			continue
		}
		if state == lexCode && strings.TrimSpace(code.String()) == "" {
			// A line at the start of a statement may be a client command.
			if m := delimiterCommand.FindStringSubmatch(line); m != nil {
				if strings.Contains(m[1], `\`) {
					return refuse(n, fmt.Sprintf("a delimiter with a backslash (%q)", m[1]))
				}
				delim = m[1]
				stmt.WriteString(line)
				if err := flush(n + 1); err != nil {
					return err
				}
				continue
			}
			if clientCommand.MatchString(line) {
				return refuse(n, fmt.Sprintf("the mariadb client command %q", strings.TrimSpace(line)))
			}
		}
		if stmt.Len()+len(line) > MaxStatement {
			return refuse(stmtLine, fmt.Sprintf("a statement longer than %d bytes", MaxStatement))
		}
		for i := 0; i < len(line); i++ {
			c := line[i]
			switch state {
			case lexSingle, lexDouble:
				q := byte('\'')
				if state == lexDouble {
					q = '"'
				}
				stmt.WriteByte(c)
				switch {
				case c == '\\' && i+1 < len(line):
					i++
					stmt.WriteByte(line[i])
				case c == q && i+1 < len(line) && line[i+1] == q:
					i++
					stmt.WriteByte(line[i])
				case c == q:
					state = lexCode
					code.WriteString("''")
				}
				continue
			case lexBacktick:
				stmt.WriteByte(c)
				code.WriteByte(c)
				if c == '`' {
					if i+1 < len(line) && line[i+1] == '`' {
						i++
						stmt.WriteByte('`')
						code.WriteByte('`')
					} else {
						state = lexCode
					}
				}
				continue
			case lexComment:
				stmt.WriteByte(c)
				if c == '*' && i+1 < len(line) && line[i+1] == '/' {
					i++
					stmt.WriteByte('/')
					state = lexCode
				}
				continue
			case lexExec:
				if c == '*' && i+1 < len(line) && line[i+1] == '/' {
					i++
					stmt.WriteString("*/")
					code.WriteByte(' ')
					state = lexCode
					continue
				}
			}
			// Code, or the code of an executable comment.
			switch {
			case strings.HasPrefix(line[i:], delim) && state == lexCode:
				stmt.WriteString(delim)
				i += len(delim) - 1
				rest := line[i+1:]
				if strings.TrimSpace(rest) == "" {
					stmt.WriteString(rest)
					if err := flush(n + 1); err != nil {
						return err
					}
					i = len(line)
				} else if err := flush(n); err != nil {
					return err
				}
				continue
			case c == '\\':
				return refuse(n, fmt.Sprintf("a backslash command outside strings (%.20q)", line[i:]))
			case c == '\'':
				state = lexSingle
			case c == '"':
				state = lexDouble
			case c == '`':
				state = lexBacktick
				code.WriteByte(c)
			case c == '#' && state == lexCode, strings.HasPrefix(line[i:], "-- ") && state == lexCode, strings.TrimRight(line[i:], "\r\n") == "--" && state == lexCode:
				stmt.WriteString(line[i:])
				code.WriteByte('\n')
				i = len(line)
				continue
			case strings.HasPrefix(line[i:], "/*!") || strings.HasPrefix(line[i:], "/*M!"):
				if state == lexExec {
					return refuse(n, "a nested executable comment")
				}
				j := i + 3
				if line[i+2] == 'M' {
					j++
				}
				for j < len(line) && line[j] >= '0' && line[j] <= '9' {
					j++
				}
				stmt.WriteString(line[i:j])
				code.WriteByte(' ')
				i = j - 1
				state = lexExec
				continue
			case strings.HasPrefix(line[i:], "/*") && state == lexCode:
				stmt.WriteString("/*")
				i++
				state = lexComment
				continue
			default:
				code.WriteByte(c)
			}
			stmt.WriteByte(c)
		}
		if rerr == io.EOF {
			if strings.TrimSpace(code.String()) != "" || state != lexCode {
				return refuse(stmtLine, "a statement without its delimiter at the end of the file (cut?)")
			}
			return flush(n)
		}
		if rerr != nil {
			return rerr
		}
	}
}
