// Package systemd is the systemd_unit component kind: a unit named by the
// layout, found by its unit file or enablement link under the systemd
// directory and, where a running systemd answers, by systemctl. A unit is
// not archived: its unit file is quarantined like a path, and RESTORE.md
// says how to start it again.
package systemd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/childproc"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/paths"
)

// Type is the layout's type of a systemd unit component.
const Type = "systemd_unit"

// DefaultDir is where unit files and enablement links live.
const DefaultDir = "/etc/systemd/system"

// Settings are the systemd kind's environment (kind.Env.Settings[Type]).
type Settings struct {
	// Dir is where unit files and enablement links live; default
	// DefaultDir.
	Dir string
	// Systemctl is the systemctl command to ask for unit states. When
	// empty, systemctl is used only if a running systemd answers
	// (/run/systemd/system exists).
	Systemctl string
}

// settings returns env's settings with defaults.
func settings(env kind.Env) Settings {
	s, _ := env.Setting(Type).(Settings)
	if s.Dir == "" {
		s.Dir = DefaultDir
	}
	return s
}

// Kind is the systemd_unit kind.
type Kind struct{}

var _ kind.Kind = Kind{}

func init() { kind.Register(Kind{}) }

func (Kind) Type() string      { return Type }
func (Kind) Key() string       { return "unit" }
func (Kind) Family() string    { return kind.FamilyUnit }
func (Kind) Noun() string      { return "unit" }
func (Kind) Shape() kind.Shape { return kind.None }
func (Kind) DumpExt() string   { return "" }

var allowedRE = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]*$`)

// unitTypes are the suffixes a systemd unit name ends with.
var unitTypes = []string{".service", ".socket", ".timer", ".target", ".path", ".mount", ".automount", ".swap", ".slice", ".scope", ".device"}

// CheckTemplate allows unit name characters and requires a literal prefix
// of the application's own ending with a separator (tracim@, tracim-):
// the system's own units (sshd.service) never carry it; and a unit type
// suffix.
func (Kind) CheckTemplate(raw string) string {
	if strings.Count(raw, kind.Placeholder) != 1 {
		return "must contain {name} exactly once"
	}
	if !allowedRE.MatchString(strings.Replace(raw, kind.Placeholder, "", 1)) {
		return "characters not allowed in unit names"
	}
	t := kind.NewTemplate(raw)
	switch {
	case t.Prefix == "":
		return "a unit template needs a literal prefix of the application's own before {name}, such as tracim@{name}.service: without one, every unit of the host that fits name_pattern would be taken for an instance"
	case !strings.ContainsAny(t.Prefix[len(t.Prefix)-1:], "@-_.:"):
		return fmt.Sprintf("the literal prefix %q must end with a separator (@ - _ . :), such as tracim@{name}.service", t.Prefix)
	case !slices.ContainsFunc(unitTypes, func(s string) bool { return strings.HasSuffix(t.Suffix, s) }):
		return "a unit template must end with a unit type (" + strings.Join(unitTypes, " ") + "), such as tracim@{name}.service"
	}
	return ""
}

func (Kind) CheckName(kind.Component, string) string { return "" }

func (Kind) Locate(c kind.Component, name string) (string, error) {
	return c.Template.Expand(name), nil
}

// systemctl returns the systemctl command to ask, or "" when no running
// systemd answers (as in containers and on this project's test machines).
func systemctl(s Settings) string {
	if s.Systemctl != "" {
		return s.Systemctl
	}
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		if p, err := exec.LookPath("systemctl"); err == nil {
			return p
		}
	}
	return ""
}

type filesKey struct{}

// unitFiles lists unit names defined or enabled under the systemd
// directory, once per scan: unit files and links at its top, and
// enablement links in its *.wants and *.requires directories. Each name
// maps to its path.
func unitFiles(s *kind.Scan) (map[string]string, error) {
	v, err := s.Cache(filesKey{}, func() (any, error) { return listUnitFiles(settings(s.Env).Dir) })
	if err != nil {
		return nil, err
	}
	return v.(map[string]string), nil
}

func listUnitFiles(dir string) (map[string]string, error) {
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() && (strings.HasSuffix(name, ".wants") || strings.HasSuffix(name, ".requires")) {
			links, err := os.ReadDir(filepath.Join(dir, name))
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", filepath.Join(dir, name), err)
			}
			for _, l := range links {
				if _, seen := out[l.Name()]; !seen {
					out[l.Name()] = filepath.Join(dir, name, l.Name())
				}
			}
			continue
		}
		if !e.IsDir() {
			out[name] = filepath.Join(dir, name)
		}
	}
	return out, nil
}

func (Kind) Names(ctx context.Context, s *kind.Scan, c kind.Component) ([]string, error) {
	files, err := unitFiles(s)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for unit := range files {
		if n, ok := c.Template.Match(unit); ok {
			seen[n] = true
		}
	}
	if cmd := systemctl(settings(s.Env)); cmd != "" {
		pattern := c.Template.Prefix + "*" + c.Template.Suffix
		out, err := childproc.Output(childproc.Command(ctx, cmd, "list-units", "--all", "--plain", "--no-legend", "--no-pager", pattern))
		if err != nil {
			return nil, fmt.Errorf("systemctl list-units %s: %w", pattern, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 0 {
				continue
			}
			if n, ok := c.Template.Match(fields[0]); ok {
				seen[n] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	return names, nil
}

func (Kind) State(ctx context.Context, s *kind.Scan, c kind.Component, name string) (kind.State, error) {
	unit := c.Template.Expand(name)
	st := kind.State{Locator: unit}
	files, err := unitFiles(s)
	if err != nil {
		return st, err
	}
	if p, ok := files[unit]; ok {
		st.Present = true
		st.UnitFile = p
		if fi, err := os.Lstat(p); err == nil {
			m := fi.ModTime().UTC()
			st.Modified = &m
		}
	}
	cmd := systemctl(settings(s.Env))
	if cmd == "" {
		return st, nil
	}
	out, err := childproc.Output(childproc.Command(ctx, cmd, "show", "--property=LoadState,ActiveState", "--no-pager", unit))
	if err != nil {
		return st, fmt.Errorf("systemctl show %s: %w", unit, err)
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			props[k] = v
		}
	}
	if ls := props["LoadState"]; ls != "" && ls != "not-found" {
		st.Present = true
	}
	active := props["ActiveState"] == "active" || props["ActiveState"] == "activating" || props["ActiveState"] == "reloading"
	st.Active = &active
	return st, nil
}

// Stop stops a systemd unit through systemctl. It fails when no running
// systemd answers.
func Stop(ctx context.Context, env kind.Env, unit string) error {
	cmd := systemctl(settings(env))
	if cmd == "" {
		return fmt.Errorf("cannot stop %s: no running systemd answers on this host", unit)
	}
	if out, err := childproc.CombinedOutput(childproc.Command(ctx, cmd, "stop", unit)); err != nil {
		return fmt.Errorf("systemctl stop %s: %w: %s", unit, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Preflight: an active unit is refused by every caller from State.Active.
func (Kind) Preflight(context.Context, kind.Env, kind.State) (*kind.Refusal, error) { return nil, nil }

func (Kind) Dump(context.Context, kind.Env, kind.Target, string) (kind.Since, error) {
	return nil, errors.New("a systemd unit is not archived")
}

func (Kind) VerifyDump(io.Reader) (kind.DumpSummary, error) {
	return kind.DumpSummary{}, errors.New("a systemd unit is not archived")
}

// QuarantineSource is the unit file; a unit known to systemctl only has
// nothing to move.
func (Kind) QuarantineSource(st kind.State) (string, bool) { return st.UnitFile, st.UnitFile != "" }

// MoveLocator is the unit name: the unit file's base name.
func (Kind) MoveLocator(m kind.Move) string { return filepath.Base(m.From) }

func (Kind) QuarantineTarget(source, id string) string { return paths.TrashTarget(source, id) }
func (Kind) TrashNames(m kind.Move) []string           { return []string{filepath.Base(m.To)} }

func (Kind) Quarantine(_ context.Context, _ kind.Env, m kind.Move) error {
	return paths.MovePath(m.From, m.To)
}

func (Kind) Unquarantine(_ context.Context, _ kind.Env, m kind.Move) error {
	return paths.MovePathBack(m.To, m.From)
}

func (Kind) Tidy(m kind.Move) { paths.TidyTrash(m) }

func (Kind) Held(_ context.Context, _ kind.Env, m kind.Move) (bool, error) {
	_, err := os.Lstat(m.To)
	return err == nil, nil
}

func (Kind) CompareQuarantined(context.Context, kind.Env, kind.Move, string) (string, error) {
	return "", errors.New("a systemd unit is not archived: there is nothing to compare its unit file with")
}

func (Kind) PurgeLabel() string { return "quarantine" }

func (Kind) PurgeCheck(context.Context, kind.Env, kind.Move) (bool, error) {
	return false, errors.New("a unit file is purged with its trash entry")
}

func (Kind) PurgeMark(context.Context, kind.Env, kind.Move) error {
	return errors.New("a unit file is purged with its trash entry")
}

func (Kind) PurgeRemove(context.Context, kind.Env, kind.Move) error {
	return errors.New("a unit file is purged with its trash entry")
}

func (Kind) PurgeLeft(m kind.Move) string { return m.To }

func (Kind) Placeholder(string) string { return "" }

func (Kind) Staging(kind.Target) string { return "" }

func (Kind) Stage(context.Context, kind.Env, kind.Target, string) (string, error) {
	return "", errors.New("a systemd unit is not archived: it is restored from quarantine only")
}

func (Kind) PutInPlace(context.Context, kind.Env, kind.Target, string) error {
	return errors.New("a systemd unit is not archived: it is restored from quarantine only")
}

func (Kind) DropStaging(context.Context, kind.Env, string, bool) error { return nil }

func (Kind) CleanStaging(context.Context, kind.Env, kind.Target) (bool, error) { return false, nil }

func (Kind) RunbookTools() string { return "" }

// RunbookStep writes the step of "Start the instance" for a unit.
func (Kind) RunbookStep(b *strings.Builder, s kind.RunbookStep) {
	q, one := kind.ShellQuote, kind.OneLine
	if !s.Present || s.Locator == "" {
		fmt.Fprintf(b, "Component %s (systemd unit `%s`) was absent when the instance was deleted: there is no unit to start.\n\n",
			one(s.Component), one(s.Locator))
		return
	}
	fmt.Fprintf(b, "Component %s is the systemd unit `%s`. Its unit file is not in the archive "+
		"(deletion moved it into quarantine, and purge removed it): if `systemctl cat %s` "+
		"says it does not exist, reinstall it the way it was first installed (package, "+
		"configuration management). Then enable and start it:\n\n",
		one(s.Component), one(s.Locator), one(q(s.Locator)))
	fmt.Fprintf(b, "```sh\nsystemctl enable --now %s\n```\n\n", q(s.Locator))
}
