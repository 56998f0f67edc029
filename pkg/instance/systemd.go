package instance

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// systemctl returns the systemctl command to ask, or "" when no running
// systemd answers (as in containers and on this project's test machines).
func (s *scan) systemctl() string {
	if s.opts.Systemctl != "" {
		return s.opts.Systemctl
	}
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		if p, err := exec.LookPath("systemctl"); err == nil {
			return p
		}
	}
	return ""
}

// unitFiles lists unit names defined or enabled under the systemd
// directory: unit files and links at its top, and enablement links in its
// *.wants and *.requires directories. Each name maps to its path.
func (s *scan) unitFiles() (map[string]string, error) {
	if s.units != nil {
		return s.units, nil
	}
	dir := s.opts.SystemdDir
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
	s.units = out
	return out, nil
}

func (s *scan) unitNames(ctx context.Context, c Component) ([]string, error) {
	files, err := s.unitFiles()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for unit := range files {
		if n, ok := c.Template.Match(unit); ok {
			seen[n] = true
		}
	}
	if cmd := s.systemctl(); cmd != "" {
		pattern := c.Template.Prefix + "*" + c.Template.Suffix
		out, err := exec.CommandContext(ctx, cmd, "list-units", "--all", "--plain", "--no-legend", "--no-pager", pattern).Output()
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

func (s *scan) unitState(ctx context.Context, c Component, name string) (ComponentState, error) {
	unit := c.Template.Expand(name)
	st := ComponentState{Locator: unit}
	files, err := s.unitFiles()
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
	cmd := s.systemctl()
	if cmd == "" {
		return st, nil
	}
	out, err := exec.CommandContext(ctx, cmd, "show", "--property=LoadState,ActiveState", "--no-pager", unit).Output()
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

// StopUnit stops a systemd unit through systemctl. It fails when no running
// systemd answers.
func StopUnit(ctx context.Context, opts Options, unit string) error {
	s := &scan{opts: opts.withDefaults()}
	cmd := s.systemctl()
	if cmd == "" {
		return fmt.Errorf("cannot stop %s: no running systemd answers on this host", unit)
	}
	if out, err := exec.CommandContext(ctx, cmd, "stop", unit).CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl stop %s: %w: %s", unit, err, strings.TrimSpace(string(out)))
	}
	return nil
}
