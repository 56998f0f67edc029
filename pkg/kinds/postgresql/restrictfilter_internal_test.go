package postgresql

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// restrictFilterModel is what restrictFilter must send for a whole dump,
// written another way: the dump's lines without pg_dump's \restrict (the
// first line that is neither blank nor a -- comment) and its \unrestrict
// with the same key (the last non-blank line), cut before the first line
// left where psql could read \unrestrict as a command (an even number of
// backslashes before it); bad is that line's number, 0 when none.
func restrictFilterModel(in string) (out string, bad int) {
	lines := strings.SplitAfter(in, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	drop := map[int]bool{}
	key := ""
	for i, l := range lines {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "--") {
			continue
		}
		if m := regexp.MustCompile(`^\\restrict ([A-Za-z0-9]+)\r?\n?$`).FindStringSubmatch(l); m != nil {
			key = m[1]
			drop[i] = true
		}
		break
	}
	for i := len(lines) - 1; i >= 0 && key != ""; i-- {
		if strings.TrimSpace(lines[i]) == "" {
			continue
		}
		if u := `\unrestrict ` + key; slicesContains([]string{u, u + "\n", u + "\r", u + "\r\n"}, lines[i]) && !drop[i] {
			drop[i] = true
		}
		break
	}
	command := regexp.MustCompile(`(^|[^\\])(\\\\)*\\unrestrict`)
	var b strings.Builder
	for i, l := range lines {
		if drop[i] {
			continue
		}
		if command.MatchString(l) {
			return b.String(), i + 1
		}
		b.WriteString(l)
	}
	return b.String(), 0
}

// TestRestrictFilterPassesTheDumpUnderItsOwnKey: for any dump-like input
// (pg_dump's pair at its places or elsewhere, other backslash commands,
// COPY data with backslashes, CRs, no final newline), the filter's
// output is `\restrict <its key>` and then exactly the model's bytes;
// it never sends \unrestrict with its key, and it stops with a
// MetaCommandError naming the line exactly when the model does.
func TestRestrictFilterPassesTheDumpUnderItsOwnKey(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		key := rapid.StringMatching(`[A-Za-z0-9]{1,12}`).Draw(t, "key")
		line := rapid.OneOf(
			rapid.SampledFrom([]string{"", "--", "-- PostgreSQL database dump", "  ", "\r", "SET x = 1;", "SELECT 1;",
				`\restrict ` + key, `\unrestrict ` + key, `\unrestrict other`, `\! id`, `\c other`,
				`\\unrestrict`, `\\\unrestrict x`, `x\\\\unrestrict`, "SELECT '\\unrestrict `id`';", `\unrestrict ` + key + " \\! id",
				"COPY public.t (a) FROM stdin;", `a\\b	\N`, `\.`}),
			rapid.StringMatching(`[-\\ a-z\t\r;'$`+"`"+`]{0,20}`),
		)
		lines := rapid.SliceOfN(line, 0, 30).Draw(t, "lines")
		if rapid.Bool().Draw(t, "pg_dump's pair") {
			lines = append(append([]string{"--", "-- PostgreSQL database dump", "--", "", `\restrict ` + key, ""}, lines...), "", `\unrestrict `+key, "")
		}
		in := strings.Join(lines, "\n")
		if rapid.Bool().Draw(t, "final newline") {
			in += "\n"
		}
		want, bad := restrictFilterModel(in)

		f, err := newRestrictFilter("dump.sql", strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if rapid.Bool().Draw(t, "one byte at a time") {
			r = iotest.OneByteReader(f)
		}
		got, err := io.ReadAll(r)
		first, rest, _ := strings.Cut(string(got), "\n")
		own, ok := strings.CutPrefix(first, `\restrict `)
		if !ok || !regexp.MustCompile(`^[A-Za-z0-9]{32}$`).MatchString(own) {
			t.Fatalf("first line %q, want \\restrict and a key of 32 letters and digits", first)
		}
		if strings.Contains(rest, own) {
			t.Fatalf("the filter's key appears after its first line: %q", rest)
		}
		if rest != want {
			t.Fatalf("sent %q\nwant %q", rest, want)
		}
		var me *MetaCommandError
		switch {
		case bad == 0 && err != nil:
			t.Fatalf("error %v, want none", err)
		case bad != 0 && !errors.As(err, &me):
			t.Fatalf("error %v, want a MetaCommandError at line %d", err, bad)
		case bad != 0 && me.Line != bad:
			t.Fatalf("error at line %d, want %d", me.Line, bad)
		}
	})
}

// TestRestrictFilterOnAPgDumpPlainFile: pg_dump 15.18's own layout (its
// \restrict after the header comments, its \unrestrict last) loses those
// two lines and nothing else.
func TestRestrictFilterOnAPgDumpPlainFile(t *testing.T) {
	dump := "--\n-- PostgreSQL database dump\n--\n\n\\restrict n9ZrGCuRMsCX\n\n-- Dumped by pg_dump version 15.18\n\n" +
		"SET statement_timeout = 0;\nCOPY public.t (i, s) FROM stdin;\n1\ta\\\\unrestrict\n\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict n9ZrGCuRMsCX\n\n"
	f, err := newRestrictFilter("dump.sql", strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(got), "\n")
	want := strings.Replace(strings.Replace(dump, "\\restrict n9ZrGCuRMsCX\n", "", 1), "\\unrestrict n9ZrGCuRMsCX\n", "", 1)
	if rest != want {
		t.Fatalf("sent %q\nwant %q", rest, want)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestPsqlWithoutRestrictIsRefused: a psql that does not know \restrict
// (before the minor releases of August 2025) fails on the first line
// fleetsafe sends; the restore says so, naming the psql version. No old
// psql is installed here: a stand-in on PATH answers as psql 15.13 does
// (`invalid command \restrict`, exit 3 under ON_ERROR_STOP) and records
// whether it was asked to stop on error.
func TestPsqlWithoutRestrictIsRefused(t *testing.T) {
	dir := t.TempDir()
	script := `#!/bin/sh
if [ "$1" = "--version" ]; then echo "psql (PostgreSQL) 15.13 (stand-in)"; exit 0; fi
case " $* " in *" ON_ERROR_STOP=1 "*) ;; *) echo "run without ON_ERROR_STOP" >&2; exit 9;; esac
IFS= read -r first
case "$first" in
'\restrict '*) printf '%s\n' 'invalid command \restrict' 'Try \? for help.' >&2; exit 3;;
esac
printf 'first line not restrict: %s\n' "$first" >&2
exit 9
`
	if err := os.WriteFile(filepath.Join(dir, "psql"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	b := kind.Backup{Format: "pg_plain", File: "/backups/acme.sql", Plain: func() (io.Reader, func() error, error) {
		return strings.NewReader("SELECT 1;\n"), func() error { return nil }, nil
	}}
	_, err := psql(context.Background(), pgdump.Conn{}, "scratch", b)
	var old *PsqlTooOldError
	if !errors.As(err, &old) {
		t.Fatalf("error %v, want a PsqlTooOldError", err)
	}
	if !strings.Contains(err.Error(), "psql (PostgreSQL) 15.13") || !strings.Contains(err.Error(), "/backups/acme.sql") {
		t.Errorf("error %q names neither the psql version nor the file", err)
	}
	if !strings.Contains(old.Hint(), "15.14") {
		t.Errorf("hint %q does not say which psql is needed", old.Hint())
	}
}
