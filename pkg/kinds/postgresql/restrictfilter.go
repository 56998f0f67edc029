package postgresql

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// How a plain dump reaches psql (every caller: StagePlain for
// instance_restore and drills, TestRestore for backup_verify's
// restore_test): psql reads the dump in its restricted mode, under a key
// of fleetsafe's own that nothing else knows, so that psql itself, with
// its own lexer, refuses every meta-command of the dump (\!, \connect,
// \copy, \o, \i, \gexec, \set with backquotes...) and the restore stops
// there (ON_ERROR_STOP). The plain-dump guard of pkg/backup stays a first
// line; this one does not depend on how anyone but psql reads the dump.
//
// restrictFilter writes `\restrict <key>` before the dump's first byte
// and never writes `\unrestrict <key>`. Of the dump it removes only
// pg_dump's own pair, each at its place: the `\restrict K` line preceded
// by nothing but blank lines and `--` comment lines, and the
// `\unrestrict K` line with the same K when it is the last non-blank
// line. Every other byte passes unchanged, other backslash lines included
// (psql refuses them), with one exception: psql before 18.6, 17.11,
// 16.15, 15.19 and 14.24 expands backquotes in the argument of
// \unrestrict, the one command restricted mode allows, so a
// `\unrestrict` that psql could read as a command anywhere else stops
// the stream with a MetaCommandError before its line is sent.
type restrictFilter struct {
	file    string
	br      *bufio.Reader
	pend    string
	n       int  // lines read
	comment bool // only blank and -- lines read so far
	dumpKey string
	held    []string // the dump's \unrestrict line and the blank lines after it
	heldN   int
	heldLen int
	done    bool
	err     error
}

var (
	dumpRestrict   = regexp.MustCompile(`^\\restrict ([A-Za-z0-9]+)\r?\n?$`)
	dumpUnrestrict = regexp.MustCompile(`^\\unrestrict ([A-Za-z0-9]+)\r?\n?$`)
)

// maxHeld bounds the blank lines held after the dump's \unrestrict line
// while waiting to know whether it is the last one.
const maxHeld = 1 << 20

// newRestrictFilter returns the filter with its first line, holding a new
// random key, ready to be read.
func newRestrictFilter(file string, r io.Reader) (*restrictFilter, error) {
	key, err := restrictKey()
	if err != nil {
		return nil, err
	}
	return &restrictFilter{file: file, br: bufio.NewReaderSize(r, 1<<16), pend: `\restrict ` + key + "\n", comment: true}, nil
}

// restrictKey is 32 random letters and digits (psql takes only those).
func restrictKey() (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random key for psql's restricted mode: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

// MetaCommandError is a plain dump holding a psql \unrestrict command
// other than pg_dump's own last line: its line was not sent to psql.
type MetaCommandError struct {
	File string
	Line int
}

func (e *MetaCommandError) Error() string {
	return fmt.Sprintf("%s line %d: a psql \\unrestrict command that is not the dump's last line (pg_dump writes one, last); the restore stopped before it", e.File, e.Line)
}

// Hint tells the operator what to do.
func (e *MetaCommandError) Hint() string {
	return "a plain dump made by pg_dump holds \\unrestrict only as its last line: check who wrote the file; a pg_custom backup of the same database restores without psql"
}

func (f *restrictFilter) Read(p []byte) (int, error) {
	for f.pend == "" {
		if f.done {
			if f.err != nil {
				return 0, f.err
			}
			return 0, io.EOF
		}
		f.step()
	}
	n := copy(p, f.pend)
	f.pend = f.pend[n:]
	return n, nil
}

// step reads one line of the dump and sets what to send (pend), or done.
func (f *restrictFilter) step() {
	line, rerr := f.br.ReadString('\n')
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		f.done, f.err = true, rerr
		return
	}
	if line == "" {
		// End of the dump: a held \unrestrict was the last non-blank
		// line; it is dropped, the blank lines after it kept.
		if len(f.held) > 0 {
			f.pend = strings.Join(f.held[1:], "")
			f.held = nil
		}
		f.done = true
		return
	}
	f.n++
	blank := strings.TrimSpace(line) == ""
	if len(f.held) > 0 {
		if blank && f.heldLen+len(line) <= maxHeld {
			f.held = append(f.held, line)
			f.heldLen += len(line)
			return
		}
		f.done, f.err = true, &MetaCommandError{File: f.file, Line: f.heldN}
		return
	}
	if f.comment && f.dumpKey == "" {
		if m := dumpRestrict.FindStringSubmatch(line); m != nil {
			f.dumpKey, f.comment = m[1], false
			return
		}
	}
	if f.dumpKey != "" {
		if m := dumpUnrestrict.FindStringSubmatch(line); m != nil && m[1] == f.dumpKey {
			f.held, f.heldN, f.heldLen = []string{line}, f.n, 0
			return
		}
	}
	if unrestrictCommand(line) {
		f.done, f.err = true, &MetaCommandError{File: f.file, Line: f.n}
		return
	}
	if !blank && !strings.HasPrefix(line, "--") {
		f.comment = false
	}
	f.pend = line
}

// unrestrictCommand tells whether psql could read `\unrestrict` as a
// command somewhere in line, whatever quotes or COPY data it is in: a
// backslash and "unrestrict" (whatever follows), the backslash preceded by
// an even number of backslashes (psql reads a pair as its \\ command; a
// backslash of COPY data is written as a pair, so COPY data never holds
// such a command).
func unrestrictCommand(line string) bool {
	const word = `\unrestrict`
	for i := 0; ; {
		j := strings.Index(line[i:], word)
		if j < 0 {
			return false
		}
		at := i + j
		i = at + 1
		k := at
		for k > 0 && line[k-1] == '\\' {
			k--
		}
		if (at-k)%2 == 0 {
			return true
		}
	}
}
