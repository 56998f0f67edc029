package recovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// HostRequest recovers every damaged instance of one layout on this host.
type HostRequest struct {
	// Priority names the instances restored first, in this order; the
	// rest follow by last activity, the most recent first.
	Priority []string
	// Confirm acts; without it only the plan is made (nothing changes).
	Confirm    bool
	ArchiveDir string
	Options    instance.Options
	Now        time.Time
	// Progress, when set, is called before and after each instance.
	Progress func(Outcome)
}

// Outcome is one instance's line of the final table.
type Outcome struct {
	Name string `json:"name"`
	// Result is planned (no confirm), restored, partly_restored, failed,
	// not_restorable (its plan has no good backup for a missing
	// component: it is still attempted for the others), or
	// nothing_to_restore (what is missing is not backed up).
	Result   string   `json:"result"`
	Restored []string `json:"restored"`
	Missing  []string `json:"missing"`
	// RecoveryPoint is the oldest backup used (or planned); AgeSeconds
	// its age: the data lost.
	RecoveryPoint   *time.Time `json:"recovery_point"`
	AgeSeconds      int64      `json:"age_seconds"`
	Age             string     `json:"age"`
	DurationSeconds float64    `json:"duration_seconds"`
	Error           string     `json:"error,omitempty"`
	// Fallbacks names the components restored from an older backup than
	// their newest, the newer ones being refused.
	Fallbacks []string `json:"fallbacks"`
}

// HostResult is the plan and, with Confirm, what was done.
type HostResult struct {
	Changed  bool          `json:"changed"`
	Plan     *DamageReport `json:"plan"`
	Order    []string      `json:"order"`
	Outcomes []Outcome     `json:"outcomes"`
}

// Outcome results.
const (
	ResultPlanned       = "planned"
	ResultRestored      = "restored"
	ResultPartly        = "partly_restored"
	ResultFailed        = "failed"
	ResultNotRestorable = "not_restorable"
	ResultNothing       = "nothing_to_restore"
)

// RecoverHost makes the inventory of the damage and, with Confirm,
// restores every damaged instance from its backups, one after the other
// in priority order; a failure on one does not stop the others. The error
// names every instance that was not fully restored.
func RecoverHost(ctx context.Context, l *instance.Layout, req HostRequest) (*HostResult, error) {
	for _, n := range req.Priority {
		if err := l.ValidateName(n); err != nil {
			return nil, fmt.Errorf("priority: %w", err)
		}
	}
	plan, err := Inventory(ctx, l, DamageOptions{ArchiveDir: req.ArchiveDir, Options: req.Options, Now: req.Now})
	if err != nil {
		return nil, err
	}
	res := &HostResult{Plan: plan, Order: Order(plan.Damaged, req.Priority), Outcomes: []Outcome{}}
	byName := map[string]Damaged{}
	for _, d := range plan.Damaged {
		byName[d.Name] = d
	}
	var failed []string
	for _, name := range res.Order {
		d := byName[name]
		o := Outcome{Name: name, Missing: d.Missing, Restored: []string{}, Fallbacks: []string{}, RecoveryPoint: d.RecoveryPoint}
		if !req.Confirm {
			o.Result = ResultPlanned
			if !d.Restorable {
				o.Result, o.Error = ResultNotRestorable, d.Problem
			}
			would := 0
			var why []string
			for _, c := range d.Components {
				if c.Status == StatusWouldRestore {
					would++
					if len(c.Refused) > 0 {
						o.Fallbacks = append(o.Fallbacks, c.Component)
					}
				} else if c.Status != StatusPresent {
					why = append(why, c.Component+": "+c.Reason)
				}
			}
			if would == 0 && d.Restorable {
				o.Result, o.Error = ResultNothing, "nothing of it can come back from backups: "+strings.Join(why, "; ")
			}
			age(&o, req.Now)
			res.Outcomes = append(res.Outcomes, o)
			continue
		}
		if req.Progress != nil {
			req.Progress(Outcome{Name: name, Result: "started", Missing: d.Missing})
		}
		start := time.Now()
		r, err := Restore(ctx, l, Request{Name: name, ArchiveDir: req.ArchiveDir, Options: req.Options, Now: req.Now})
		o.DurationSeconds = time.Since(start).Seconds()
		if r != nil {
			o.Restored = r.Restored
			o.RecoveryPoint = r.RecoveryPoint
			if r.Changed {
				res.Changed = true
			}
			for _, c := range r.Components {
				if c.Status == StatusRestored && len(c.Refused) > 0 {
					o.Fallbacks = append(o.Fallbacks, c.Component)
				}
			}
		}
		switch {
		case err == nil && len(o.Restored) == 0:
			o.Result = ResultNothing
		case err == nil:
			o.Result = ResultRestored
		case len(o.Restored) > 0:
			o.Result, o.Error = ResultPartly, errText(err)
		default:
			o.Result, o.Error = ResultFailed, errText(err)
		}
		if err != nil {
			failed = append(failed, name)
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
		}
		age(&o, req.Now)
		res.Outcomes = append(res.Outcomes, o)
		if req.Progress != nil {
			req.Progress(o)
		}
	}
	if len(failed) > 0 {
		return res, &HostError{Failed: failed}
	}
	return res, nil
}

// HostError names the instances a host recovery did not fully restore.
type HostError struct{ Failed []string }

func (e *HostError) Error() string {
	return fmt.Sprintf("%d instance(s) not fully restored from backups: %s", len(e.Failed), strings.Join(e.Failed, ", "))
}

// Hint tells the operator what to do.
func (e *HostError) Hint() string {
	return "every component is absent or complete; the table says, per instance, what was restored and why the rest was not; fix and run again (what is back is left as it is)"
}

func errText(err error) string {
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		return err.Error() + " (" + h.Hint() + ")"
	}
	return err.Error()
}

func age(o *Outcome, now time.Time) {
	if now.IsZero() {
		now = time.Now()
	}
	if o.RecoveryPoint != nil {
		a := max(now.Sub(*o.RecoveryPoint), 0)
		o.AgeSeconds, o.Age = int64(a.Seconds()), a.Round(time.Minute).String()
	}
}

// Order is the restore order: the priority names that are damaged, in
// their order, then the others by last activity, the most recent first
// (those never seen active last), then by name.
func Order(damaged []Damaged, priority []string) []string {
	var out []string
	names := map[string]bool{}
	for _, d := range damaged {
		names[d.Name] = true
	}
	for _, p := range priority {
		if names[p] && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	rest := slices.Clone(damaged)
	sort.SliceStable(rest, func(i, j int) bool {
		a, b := rest[i].LastActivity, rest[j].LastActivity
		switch {
		case a != nil && b != nil && !a.Equal(*b):
			return a.After(*b)
		case a != nil && b == nil:
			return true
		case a == nil && b != nil:
			return false
		}
		return rest[i].Name < rest[j].Name
	})
	for _, d := range rest {
		if !slices.Contains(out, d.Name) {
			out = append(out, d.Name)
		}
	}
	return out
}
