package kinds_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

// testDB is a component kind that exists only in this test binary: a
// "database" is the file <root>/<name>.db, <root> coming from the
// environment (kind.Env.Settings["fstestdb"]). It has the dump shape and
// purges its own quarantine, as a database kind does, and is registered
// from this file alone: nothing else in the code knows it.
type testDB struct{}

const testDBType = "fstestdb"

var _ kind.Kind = testDB{}

func init() { kind.Register(testDB{}) }

const dumpHeader = "FSTESTDB\n"

func root(env kind.Env) string            { s, _ := env.Setting(testDBType).(string); return s }
func file(env kind.Env, db string) string { return filepath.Join(root(env), db+".db") }

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func (testDB) Type() string   { return testDBType }
func (testDB) Key() string    { return "database" }
func (testDB) Family() string { return testDBType }
func (testDB) Noun() string   { return "test database" }

var testDBChars = regexp.MustCompile(`^[a-z0-9_]*$`)

func (testDB) CheckTemplate(raw string) string {
	t := kind.NewTemplate(raw)
	switch {
	case strings.Count(raw, kind.Placeholder) != 1:
		return "must contain {name} exactly once"
	case !testDBChars.MatchString(t.Prefix + t.Suffix):
		return "characters not allowed in test database names"
	case !strings.HasSuffix(t.Prefix, "_"):
		return "a test database template needs a literal prefix ending with _"
	}
	return ""
}

func (testDB) CheckName(kind.Component, string) string { return "" }
func (testDB) Locate(c kind.Component, name string) (string, error) {
	return c.Template.Expand(name), nil
}

func (testDB) Names(_ context.Context, s *kind.Scan, c kind.Component) ([]string, error) {
	entries, err := os.ReadDir(root(s.Env))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if db, ok := strings.CutSuffix(e.Name(), ".db"); ok {
			if n, ok := c.Template.Match(db); ok {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

func (testDB) State(_ context.Context, s *kind.Scan, c kind.Component, name string) (kind.State, error) {
	st := kind.State{Locator: c.Template.Expand(name)}
	fi, err := os.Stat(file(s.Env, st.Locator))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	st.Present = true
	size := fi.Size()
	st.SizeBytes = &size
	return st, nil
}

func (testDB) Preflight(_ context.Context, env kind.Env, st kind.State) (*kind.Refusal, error) {
	if exists(file(env, st.Locator) + ".lock") {
		return &kind.Refusal{Reason: "test database " + st.Locator + " is locked", Advice: "remove its .lock file"}, nil
	}
	return nil, nil
}

func (testDB) Shape() kind.Shape { return kind.Dump }
func (testDB) DumpExt() string   { return ".testdump" }

func (testDB) Dump(_ context.Context, env kind.Env, t kind.Target, dump string) (kind.Since, error) {
	data, err := os.ReadFile(file(env, t.Locator))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(dump, append([]byte(dumpHeader), data...), 0o600); err != nil {
		return nil, err
	}
	return func(context.Context) ([]string, error) {
		now, err := os.ReadFile(file(env, t.Locator))
		if err != nil || !bytes.Equal(now, data) {
			return []string{"test database " + t.Locator + " changed after it was dumped"}, nil
		}
		return nil, nil
	}, nil
}

func (testDB) VerifyDump(r io.Reader) (kind.DumpSummary, error) {
	head, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || head != dumpHeader {
		return kind.DumpSummary{}, fmt.Errorf("not a test database dump (header %q)", head)
	}
	return kind.DumpSummary{Entries: 1, DataBlocks: 1}, nil
}

func (testDB) QuarantineSource(st kind.State) (string, bool) { return st.Locator, true }
func (testDB) MoveLocator(m kind.Move) string                { return m.From }
func (testDB) QuarantineTarget(source, id string) string {
	return "fsq_" + id[strings.LastIndex(id, "-")+1:] + "_" + source
}
func (testDB) TrashNames(kind.Move) []string { return nil }

func rename(env kind.Env, from, to string) error {
	f, t := file(env, from), file(env, to)
	switch {
	case !exists(f) && exists(t):
		return nil
	case !exists(f):
		return fmt.Errorf("test database %s is gone and not at %s either", from, to)
	case exists(t):
		return fmt.Errorf("both test databases %s and %s exist; resolve by hand", from, to)
	}
	return os.Rename(f, t)
}

func (testDB) Quarantine(_ context.Context, env kind.Env, m kind.Move) error {
	return rename(env, m.From, m.To)
}
func (testDB) Unquarantine(_ context.Context, env kind.Env, m kind.Move) error {
	return rename(env, m.To, m.From)
}
func (testDB) Tidy(kind.Move) {}
func (testDB) Held(_ context.Context, env kind.Env, m kind.Move) (bool, error) {
	return exists(file(env, m.To)), nil
}

func (testDB) CompareQuarantined(_ context.Context, env kind.Env, m kind.Move, dump string) (string, error) {
	got, err := os.ReadFile(file(env, m.To))
	if err != nil {
		return err.Error(), nil
	}
	want, err := os.ReadFile(dump)
	if err != nil {
		return err.Error(), nil
	}
	if !bytes.Equal(append([]byte(dumpHeader), got...), want) {
		return "its content differs from the verified dump in its archive", nil
	}
	return "", nil
}

func purging(q string) string { return "fsp_" + strings.TrimPrefix(q, "fsq_") }

func (testDB) PurgeLabel() string { return "database" }
func (testDB) PurgeCheck(_ context.Context, env kind.Env, m kind.Move) (bool, error) {
	intact, purge := exists(file(env, m.To)), exists(file(env, purging(m.To)))
	if intact && purge {
		return false, fmt.Errorf("both %s and %s exist", m.To, purging(m.To))
	}
	return !intact && !purge, nil
}
func (testDB) PurgeMark(_ context.Context, env kind.Env, m kind.Move) error {
	if !exists(file(env, m.To)) {
		return nil
	}
	return os.Rename(file(env, m.To), file(env, purging(m.To)))
}
func (testDB) PurgeRemove(_ context.Context, env kind.Env, m kind.Move) error {
	if err := os.Remove(file(env, purging(m.To))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
func (testDB) PurgeLeft(m kind.Move) string { return "test database " + purging(m.To) }

func (testDB) Placeholder(string) string { return "" }
func (testDB) Staging(t kind.Target) string {
	return "fsstage_" + kind.StagingID(t.App, t.Instance+"\x00"+t.Component.Name) + "_" + t.Locator
}
func (k testDB) Stage(_ context.Context, env kind.Env, t kind.Target, dump string) (string, error) {
	data, err := os.ReadFile(dump)
	if err != nil {
		return "", err
	}
	stage := k.Staging(t)
	if err := os.WriteFile(file(env, stage), bytes.TrimPrefix(data, []byte(dumpHeader)), 0o600); err != nil {
		return "", err
	}
	return stage, nil
}
func (testDB) PutInPlace(_ context.Context, env kind.Env, t kind.Target, staged string) error {
	if err := os.Link(file(env, staged), file(env, t.Locator)); err != nil {
		return err
	}
	return os.Remove(file(env, staged))
}
func (testDB) DropStaging(_ context.Context, env kind.Env, staged string, placed bool) error {
	if placed {
		return nil
	}
	return os.Remove(file(env, staged))
}
func (k testDB) CleanStaging(_ context.Context, env kind.Env, t kind.Target) (bool, error) {
	if !exists(file(env, k.Staging(t))) {
		return false, nil
	}
	return true, os.Remove(file(env, k.Staging(t)))
}

func (testDB) RunbookTools() string { return "`cp`" }
func (testDB) RunbookStep(b *strings.Builder, s kind.RunbookStep) {
	fmt.Fprintf(b, "### %s: test database `%s`\n\nExtract `%s` and copy it without its first line to `%s.db`.\n\n",
		kind.OneLine(s.Component), kind.OneLine(s.Locator), kind.OneLine(s.ArchivePath), kind.OneLine(s.Locator))
}
