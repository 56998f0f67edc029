package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/modules/instance_restore"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
)

// recoverCommand is `fleetsafe recover`: what playbooks/recover_fleet.yml
// does, on this host alone, for the day AWX is down too. With a name, one
// instance is restored from its backups (instance_restore source=backup);
// without, the damage of the host is listed and, with --confirm, every
// damaged instance is restored in priority order.
var recoverCommand = ansible.Module{
	Name: "recover",
	Spec: ansible.Spec{Params: map[string]ansible.Param{
		"name":        {Type: ansible.TypeStr},
		"components":  {Type: ansible.TypeList, Elements: ansible.TypeStr},
		"force":       {Type: ansible.TypeBool, Default: false},
		"archive_dir": {Type: ansible.TypePath},
		"priority":    {Type: ansible.TypeList, Elements: ansible.TypeStr},
		"confirm":     {Type: ansible.TypeBool, Default: false},
	}}.Merge(modutil.LayoutSpec).Merge(modutil.PGSpec),
	Run: runRecover,
}

func runRecover(ctx context.Context, req *ansible.Request) (*ansible.Result, error) {
	layout, err := modutil.Layout(req.Params)
	if err != nil {
		return nil, err
	}
	p := req.Params
	opts := modutil.Options(p)
	if p.Has("name") {
		if p.Has("priority") {
			return nil, errors.New("--priority orders the instances of the host; it cannot be given with a name")
		}
		r, err := recovery.Restore(ctx, layout, recovery.Request{
			Name: p.String("name"), Components: p.Strings("components"), Force: p.Bool("force"),
			ArchiveDir: p.String("archive_dir"), CheckMode: req.CheckMode || !p.Bool("confirm"), Options: opts,
			AfterStep: modutil.CrashHook(),
		})
		if r == nil {
			return nil, err
		}
		res := instancerestore.Result(r, req.CheckMode || !p.Bool("confirm"))
		if !p.Bool("confirm") && !req.CheckMode {
			res.Changed = false
			res.Msg = r.Msg + "; nothing was changed: add --confirm to restore"
		}
		return res, err
	}
	if p.Has("components") || p.Bool("force") {
		return nil, errors.New("--components and --force apply to one instance: give its name")
	}
	confirm := p.Bool("confirm") && !req.CheckMode
	progress, _ := ctx.Value(recoverProgressKey{}).(func(recovery.Outcome))
	r, err := recovery.RecoverHost(ctx, layout, recovery.HostRequest{Priority: p.Strings("priority"), Confirm: confirm,
		ArchiveDir: p.String("archive_dir"), Options: opts, Progress: progress})
	if r == nil {
		return nil, err
	}
	res := &ansible.Result{Changed: r.Changed}
	res.Set("app", layout.App).Set("damaged", r.Plan.Damaged).Set("order", r.Order).Set("outcomes", r.Outcomes).
		Set("uncertain_backups", r.Plan.Uncertain).Set("soft_deleted", r.Plan.SoftDeleted)
	switch {
	case len(r.Order) == 0:
		res.Msg = fmt.Sprintf("no damaged instance of %s on this host", layout.App)
	case !confirm:
		res.Msg = fmt.Sprintf("%d damaged instance(s) of %s; nothing was changed: add --confirm to restore them in this order", len(r.Order), layout.App)
	case err == nil:
		res.Msg = fmt.Sprintf("%d damaged instance(s) of %s restored from backups", len(r.Order), layout.App)
	}
	return res, err
}

// recoverProgressKey carries, in the context, where recover prints one
// line as each instance starts and ends (stderr, without --json).
type recoverProgressKey struct{}

// recoverProgress writes those lines.
func recoverProgress(w io.Writer) func(recovery.Outcome) {
	return func(o recovery.Outcome) {
		if o.Result == "started" {
			fmt.Fprintf(w, "restoring %s (missing %s)…\n", o.Name, strings.Join(o.Missing, ", "))
			return
		}
		line := fmt.Sprintf("%s: %s", o.Name, o.Result)
		if len(o.Restored) > 0 {
			line += " " + strings.Join(o.Restored, ", ")
		}
		if o.Age != "" {
			line += ", backup " + o.Age + " old"
		}
		fmt.Fprintf(w, "%s in %.1fs\n", line, o.DurationSeconds)
	}
}

// recoverDoc is the command's documentation (ansible-doc format, for
// --help).
var recoverDoc = []byte(`DOCUMENTATION:
  module: recover
  short_description: Restore this host's damaged instances from their regular backups
  description:
    - Without a name, lists the damage of this host (every instance of the layout that is partial, or gone but
      with backups, as instance_info with O(damage) does), with the newest good backup of each missing component
      and its age, in the order a restore would follow. Nothing changes without O(confirm).
    - With O(confirm), restores every damaged instance from its backups (instance_restore with source backup),
      one after the other, the O(priority) names first, then the others by last activity, the most recent first;
      a failure on one instance does not stop the others. Ends with a table (instance, result, components
      restored, recovery point and age, duration); the exit status is 1 when one was not fully restored.
    - With a name, the same for that instance alone; O(components) narrows and O(force) replaces present
      components.
  options:
    name:
      description: One exact instance name; without it, every damaged instance of the host.
      type: str
    components:
      description: With O(name), restore only these components.
      type: list
      elements: str
    force:
      description: With O(name), replace present components (needs O(archive_dir), where the replaced ones are kept in quarantine).
      type: bool
      default: false
    archive_dir:
      description: instance_soft_delete's archive directory; names soft-deleted there on purpose are not damage.
      type: path
    priority:
      description: Instances restored first, in this order.
      type: list
      elements: str
    confirm:
      description: Restore; without it, only the plan is shown.
      type: bool
      default: false
    layout:
      description: The layout as a dict.
      type: dict
    layout_file:
      description: Path of the YAML layout file.
      type: path
    layouts_dir:
      description: Directory of the layouts of every application of the host.
      type: path
      default: /etc/fleetsafe/layouts.d
    login_host:
      description: PostgreSQL host.
      type: str
      aliases: [host]
    port:
      description: PostgreSQL port.
      type: int
      aliases: [login_port]
    login_user:
      description: PostgreSQL user.
      type: str
      aliases: [login]
    login_password:
      description: PostgreSQL password; never shown.
      type: str
    login_unix_socket:
      description: Directory of the PostgreSQL Unix socket.
      type: str
      aliases: [unix_socket]
    ssl_mode:
      description: libpq SSL mode.
      type: str
      choices: [allow, disable, prefer, require, verify-ca, verify-full]
`)

// recoverReport prints the result of recover for people: a status line,
// then a table of the components (one instance) or of the instances.
func recoverReport(w io.Writer, out map[string]any) error {
	plain, err := plainValue(out)
	if err != nil {
		return err
	}
	res := plain.(map[string]any)
	fmt.Fprintln(w, statusLine(res))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if comps, ok := res["recovery"].([]any); ok {
		fmt.Fprintln(tw, "COMPONENT\tSTATUS\tBACKUP\tAGE\tDURATION")
		var details []string
		for _, c := range comps {
			m, _ := c.(map[string]any)
			b, _ := m["backup"].(map[string]any)
			path, agestr := "-", "-"
			if b != nil {
				path, agestr = fmt.Sprint(b["path"]), fmt.Sprint(b["age"])
			}
			fmt.Fprintf(tw, "%v\t%v\t%s\t%s\t%s\n", m["component"], m["status"], path, agestr, seconds(m["duration_seconds"]))
			if r, _ := m["reason"].(string); r != "" && m["status"] != recovery.StatusPresent {
				details = append(details, fmt.Sprintf("  %v: %s", m["component"], r))
			}
			refused, _ := m["refused"].([]any)
			for _, x := range refused {
				rm, _ := x.(map[string]any)
				details = append(details, fmt.Sprintf("  %v: refused %v: %v", m["component"], rm["path"], rm["reason"]))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, d := range details {
			fmt.Fprintln(w, d)
		}
		return nil
	}
	outcomes, _ := res["outcomes"].([]any)
	if len(outcomes) == 0 {
		return nil
	}
	fmt.Fprintln(tw, "INSTANCE\tRESULT\tMISSING\tRESTORED\tRECOVERY POINT\tAGE\tDURATION")
	var details []string
	for _, o := range outcomes {
		m, _ := o.(map[string]any)
		rp := "-"
		if s, ok := m["recovery_point"].(string); ok {
			rp = s
		}
		agestr := "-"
		if s, _ := m["age"].(string); s != "" {
			agestr = s
		}
		fb, _ := m["fallbacks"].([]any)
		if len(fb) > 0 {
			agestr += " (older backup for " + join(fb) + ")"
		}
		fmt.Fprintf(tw, "%v\t%v\t%s\t%s\t%s\t%s\t%s\n", m["name"], m["result"], join(m["missing"]), join(m["restored"]), rp, agestr, seconds(m["duration_seconds"]))
		if e, _ := m["error"].(string); e != "" {
			details = append(details, fmt.Sprintf("  %v: %s", m["name"], e))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, d := range details {
		fmt.Fprintln(w, d)
	}
	return nil
}

func join(v any) string {
	l, _ := v.([]any)
	if len(l) == 0 {
		return "-"
	}
	s := make([]string, len(l))
	for i, x := range l {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func seconds(v any) string {
	switch t := v.(type) {
	case float64:
		return fmt.Sprintf("%.1fs", t)
	case int64:
		return fmt.Sprintf("%ds", t)
	}
	return "-"
}
