package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
)

// version is set at link time (-ldflags '-X main.version=...'); without it
// the library's version is shown.
var version string

func versionString() string {
	if version != "" {
		return version
	}
	return archive.Version
}

// Exit statuses of the command line.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// run is the whole process: a module when args name one, else the
// command line. It returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if code, served := modules.Serve(ctx, args, stdin, stdout); served {
		return code
	}
	if len(args) < 2 {
		usage(stderr)
		return exitUsage
	}
	switch args[1] {
	case "-h", "--help", "help":
		if len(args) > 2 {
			if c, ok := lookup(args[2]); ok {
				commandHelp(stdout, c)
				return exitOK
			}
		}
		usage(stdout)
		return exitOK
	case "-V", "--version", "version":
		fmt.Fprintf(stdout, "fleetsafe %s\n", versionString())
		return exitOK
	}
	c, ok := lookup(args[1])
	if !ok {
		fmt.Fprintf(stderr, "fleetsafe: unknown command %q\n\n", args[1])
		usage(stderr)
		return exitUsage
	}
	inv, err := parse(c, args[2:])
	if err != nil {
		fmt.Fprintf(stderr, "fleetsafe %s: %v\nSee `fleetsafe %s --help`.\n", c.name, err, c.name)
		return exitUsage
	}
	if inv.help {
		commandHelp(stdout, c)
		return exitOK
	}
	// Long work shows its progress on stderr when a person watches it.
	var bar *progressBar
	if c.progress && !inv.json && isTerminal(stderr) {
		bar = &progressBar{w: stderr}
		ctx = modutil.WithProgress(ctx, bar.update)
	}
	if c.name == "recover" && !inv.json {
		ctx = context.WithValue(ctx, recoverProgressKey{}, recoverProgress(stderr))
	}
	var out map[string]any
	if c.name == "verify-archive" {
		out = verifyArchive(ctx, inv.args[0])
	} else {
		out = c.module.Call(ctx, inv.raw)
	}
	if bar != nil {
		bar.finish()
	}
	write := report
	if c.name == "recover" && !inv.json {
		write = func(stdout, _ io.Writer, out map[string]any, _ bool) error { return recoverReport(stdout, out) }
	}
	if err := write(stdout, stderr, out, inv.json); err != nil {
		fmt.Fprintf(stderr, "fleetsafe %s: %v\n", c.name, err)
		return exitFailed
	}
	if failed, _ := out["failed"].(bool); failed {
		return exitFailed
	}
	return exitOK
}

// invocation is a parsed command line.
type invocation struct {
	// raw holds the module's arguments as Ansible would pass them: the
	// values as given (the module's own validation coerces them) and the
	// _ansible_ keys of --check and --diff.
	raw  map[string]any
	args []string
	json bool
	help bool
}

// parse reads the command's flags: one per module parameter (--archive-dir
// or --archive_dir, aliases too; --flag, --flag=false and --no-flag for
// booleans; lists repeated or comma-separated), --check, --diff, --json,
// --help, and bare arguments for the command's positional parameter.
func parse(c command, argv []string) (*invocation, error) {
	inv := &invocation{raw: map[string]any{}}
	spec := c.module.Spec.Params
	names := map[string]string{}
	for name, p := range spec {
		names[name] = name
		for _, a := range p.Aliases {
			names[a] = name
		}
	}
	lists := map[string][]any{}
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if a == "--" {
			inv.args = append(inv.args, argv[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			inv.args = append(inv.args, a)
			continue
		}
		key, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		key = strings.ReplaceAll(key, "-", "_")
		switch key {
		case "h", "help":
			inv.help = true
			continue
		case "json", "check", "diff":
			on := true
			if hasVal {
				b, err := strconv.ParseBool(val)
				if err != nil {
					return nil, fmt.Errorf("%s: %q is not true or false", a, val)
				}
				on = b
			}
			switch key {
			case "json":
				inv.json = on
			case "check":
				inv.raw["_ansible_check_mode"] = on
			case "diff":
				inv.raw["_ansible_diff"] = on
			}
			continue
		}
		name, ok := names[key]
		negated := false
		if !ok {
			if k, found := strings.CutPrefix(key, "no_"); found && spec[names[k]].Type == ansible.TypeBool && names[k] != "" {
				name, ok, negated = names[k], true, true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown option %s (options: %s)", a, strings.Join(flagNames(spec), ", "))
		}
		p := spec[name]
		switch {
		case negated && hasVal:
			return nil, fmt.Errorf("%s takes no value", a)
		case p.Type == ansible.TypeBool && !hasVal:
			val, hasVal = strconv.FormatBool(!negated), true
		case !hasVal:
			if i+1 >= len(argv) {
				return nil, fmt.Errorf("%s needs a value", a)
			}
			i++
			val = argv[i]
		}
		if p.Type == ansible.TypeList {
			lists[name] = append(lists[name], val)
			continue
		}
		if _, dup := inv.raw[name]; dup {
			return nil, fmt.Errorf("%s given twice", flag(name))
		}
		inv.raw[name] = val
	}
	if err := c.positionals(inv, lists); err != nil {
		return nil, err
	}
	for name, vs := range lists {
		if len(vs) == 1 {
			inv.raw[name] = vs[0] // a string: split at commas, as Ansible does
		} else {
			inv.raw[name] = vs
		}
	}
	return inv, nil
}

// positionals gives the bare arguments to the command's positional
// parameter, refusing any it has no place for.
func (c command) positionals(inv *invocation, lists map[string][]any) error {
	if inv.help {
		return nil
	}
	if c.name == "verify-archive" {
		if len(inv.args) != 1 {
			return fmt.Errorf("expected the path of one archive, got %d arguments", len(inv.args))
		}
		return nil
	}
	if len(inv.args) == 0 {
		return nil
	}
	p, ok := c.module.Spec.Params[c.positional]
	switch {
	case !ok:
		return fmt.Errorf("unexpected argument %q", inv.args[0])
	case p.Type == ansible.TypeList:
		for _, a := range inv.args {
			lists[c.positional] = append(lists[c.positional], a)
		}
	case len(inv.args) > 1:
		return fmt.Errorf("expected one %s, got %q", c.positional, inv.args)
	case inv.raw[c.positional] != nil:
		return fmt.Errorf("%s given twice (%s and argument %q)", c.positional, flag(c.positional), inv.args[0])
	default:
		inv.raw[c.positional] = inv.args[0]
	}
	inv.args = nil
	return nil
}

func flag(param string) string { return "--" + strings.ReplaceAll(param, "_", "-") }

func flagNames(spec map[string]ansible.Param) []string {
	out := make([]string, 0, len(spec)+4)
	for name := range spec {
		out = append(out, flag(name))
	}
	sort.Strings(out)
	return append(out, "--check", "--diff", "--json", "--help")
}

// verifyArchive checks one archive and returns a module-shaped result.
func verifyArchive(ctx context.Context, path string) map[string]any {
	m, err := archive.VerifyArchiveWith(ctx, path, archive.VerifyOptions{Progress: modutil.Progress(ctx)})
	if err != nil {
		return map[string]any{"changed": false, "failed": true, "archive": path,
			"msg": fmt.Sprintf("archive %s does not verify: %s", path, ansible.Message(err))}
	}
	comps := make([]string, 0, len(m.Components))
	for _, c := range m.Components {
		comps = append(comps, c.Name)
	}
	return map[string]any{
		"changed": false, "failed": false, "archive": path,
		"msg": fmt.Sprintf("archive %s verifies: %d files and %d database dumps of instance %s match their manifest",
			path, len(m.Files), len(m.Databases), m.Instance),
		"manifest": map[string]any{
			"id": m.ID, "instance": m.Instance, "app": m.App, "layout": m.Layout, "host": m.Host,
			"fingerprint": m.Fingerprint, "reason": m.Reason, "requested_by": m.RequestedBy, "job_id": m.JobID,
			"created_at": m.CreatedAt, "tool_version": m.ToolVersion, "components": comps,
			"files": len(m.Files), "databases": len(m.Databases), "losses": m.Losses,
		},
	}
}
