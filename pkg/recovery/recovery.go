// Package recovery restores an instance from its regular backups (the
// layout's backup rules), not from fleetsafe's own archives: for each
// component, the newest backup that passes every check backup_verify
// makes, falling back to older ones and saying why; directories and files
// from tar, tar_gz, tar_zst and zip backups through a staging directory
// beside their place and os.Root; PostgreSQL databases from pg_custom and
// pg_plain dumps through a staging database; each put in place by one
// rename that never replaces anything.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
)

// Component statuses in a Result.
const (
	// StatusRestored: put in place from a backup.
	StatusRestored = "restored"
	// StatusWouldRestore: check mode; it would be restored from Backup.
	StatusWouldRestore = "would_restore"
	// StatusPresent: present, left as it is (no force).
	StatusPresent = "present"
	// StatusNotRestorable: its backup rule cannot be restored
	// automatically (format any, backup: false, no rule, a kind or format
	// not supported yet); Reason says which.
	StatusNotRestorable = "not_restorable"
	// StatusNoGoodBackup: no backup passes the checks; Refused says why
	// each was refused.
	StatusNoGoodBackup = "no_good_backup"
	// StatusFailed: the restore failed; Reason says what state it left.
	StatusFailed = "failed"
)

// Request is one restore of an instance from its backups.
type Request struct {
	Name string
	// Components restricts the restore to these components.
	Components []string
	// Force replaces present components: the backup is staged first;
	// only then is the present one moved aside into quarantine (recorded
	// under ArchiveDir), and moved back if the new one cannot be put in
	// place.
	Force bool
	// ArchiveDir is instance_soft_delete's archive_dir: required with
	// Force (the moves aside are recorded there); its names are known
	// names for backup ownership.
	ArchiveDir string
	CheckMode  bool
	Options    instance.Options
	// Now is the time backup ages are measured against (default: now).
	Now time.Time
	// S3 reaches the buckets of backup rules in object storage
	// (s3://bucket/...); its empty fields take the AWS_* variables.
	S3 s3store.Settings
	// AfterStep, when set, is called after each step ("lock",
	// "select", "stage:<component>", "aside:<component>",
	// "place:<component>"); tests use it to crash the process.
	AfterStep func(step string)
}

func (r *Request) step(s string) {
	if r.AfterStep != nil {
		r.AfterStep(s)
	}
}

// Backup is the backup a component was (or would be) restored from.
type Backup struct {
	Path   string    `json:"path"`
	MTime  time.Time `json:"mtime"`
	Size   int64     `json:"size_bytes"`
	Format string    `json:"format"`
	// AgeSeconds is how old the backup is: the data written after it is
	// lost (the recovery point).
	AgeSeconds int64  `json:"age_seconds"`
	Age        string `json:"age"`
	// Layout says how a tar or zip backup held the component (top: under
	// its base name; full: under its absolute path; content: ./).
	Layout string `json:"layout,omitempty"`
}

// Refused is a newer backup passed over, and why.
type Refused struct {
	Path   string    `json:"path"`
	MTime  time.Time `json:"mtime"`
	Reason string    `json:"reason"`
}

// ComponentResult is what happened to one component.
type ComponentResult struct {
	Component string  `json:"component"`
	Type      string  `json:"type"`
	Locator   string  `json:"locator"`
	Status    string  `json:"status"`
	Backup    *Backup `json:"backup,omitempty"`
	// Refused lists the newer backups refused before Backup (the
	// fallback), or every backup when none was good.
	Refused []Refused `json:"refused"`
	// Reason says why a component was not restored, or what a failure
	// left.
	Reason string `json:"reason,omitempty"`
	// Placeholder, when set, says the component is present but only as
	// an empty directory or file (what a rm of its content or a package
	// script leaves): its content is missing.
	Placeholder string `json:"placeholder,omitempty"`
	// Replaced is where force moved the present component (quarantine).
	Replaced        string  `json:"replaced,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// Result is the outcome of a restore from backups. On failure it is
// returned with the error and says what moved.
type Result struct {
	Changed    bool              `json:"changed"`
	Components []ComponentResult `json:"components"`
	// Restored lists the components restored (in check mode, that would
	// be restored).
	Restored []string `json:"restored"`
	// RecoveryPoint is the mtime of the oldest backup used: data written
	// after it is lost for at least one component.
	RecoveryPoint *time.Time `json:"recovery_point,omitempty"`
	Notes         []string   `json:"notes"`
	Msg           string     `json:"msg,omitempty"`
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// RefusedError is a restore refused before the instance changed.
type RefusedError struct {
	Name   string
	Reason string
	Advice string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refusing to restore %s from backups: %s", e.Name, e.Reason)
}

// Hint tells the operator what to do.
func (e *RefusedError) Hint() string {
	if e.Advice != "" {
		return e.Advice + "; the instance was not changed"
	}
	return "the instance was not changed"
}

// FailedError is a restore from backups that did not bring back every
// component asked for; State says what it left.
type FailedError struct {
	Name   string
	Failed []string
	State  string
	Err    error
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("restore of %s from backups: component(s) %s not restored: %v", e.Name, strings.Join(e.Failed, ", "), e.Err)
}

func (e *FailedError) Unwrap() error { return e.Err }

// Hint tells the operator what state was left and how to finish.
func (e *FailedError) Hint() string { return e.State }

// TreeFormats are the backup formats a dir or file component is restored
// from; DumpFormats those of a database, by component type.
var (
	TreeFormats = []string{"tar", "tar_gz", "tar_zst", "zip"}
	DumpFormats = map[string][]string{"postgresql": {"pg_custom", "pg_plain"}}
)

// plan is one component to restore.
type plan struct {
	c       instance.Component
	k       kind.Kind
	t       kind.Target
	present bool
	from    string // present component's quarantine source (force)
	res     *ComponentResult
	cands   []backup.Candidate
	// unlisted says why backups of the component could not be listed
	// (a bucket refused the listing, a directory unreadable).
	unlisted []string
	chosen   int // index in cands, -1 when none
	staged   string
	layout   string
	// pin holds the chosen candidate open: it is judged and restored
	// through this one descriptor (its Content), never by its path again.
	pin *pinned
	// placeholder is the present placeholder to replace (no force), born
	// its birth time when the filesystem records it.
	placeholder string
	born        time.Time
	bornKnown   bool
	// readContent: check mode reads a tree backup's entries as the
	// extraction would, so that the plan refuses what the run refuses.
	readContent bool
	// oneRead: the run judges a tar or pg_custom candidate's content
	// while it stages it (one read), not before: choose makes only the
	// checks that do not read the content, and stage the others; pending
	// says the chosen candidate's content checks are still to come.
	oneRead bool
	pending bool
	older   *backup.Candidate
	// files and bytes of a staged tree (drills report them).
	files int
	bytes int64
}

// Restore brings back the components of instance name from the newest
// good backup of each. By default only missing components; a component
// whose backup cannot be restored automatically is reported, never
// guessed. Every component is absent or complete at every instant.
func Restore(ctx context.Context, l *instance.Layout, req Request) (*Result, error) {
	if err := l.ValidateName(req.Name); err != nil {
		return nil, err
	}
	for _, c := range req.Components {
		if _, ok := l.Component(c); !ok {
			return nil, fmt.Errorf("no component %q in layout %s", c, l.Source)
		}
	}
	if req.Now.IsZero() {
		req.Now = time.Now()
	}
	if req.Force && req.ArchiveDir == "" {
		return nil, &RefusedError{Name: req.Name, Reason: "force needs archive_dir: a present component is moved aside into quarantine, recorded there",
			Advice: "give archive_dir (instance_soft_delete's)"}
	}
	res := &Result{Components: []ComponentResult{}, Restored: []string{}, Notes: []string{}}
	if !req.CheckMode {
		unlock, err := softdelete.LockInstance(l, req.Name)
		if err != nil {
			if re, ok := softdelete.IsRefused(err); ok {
				return nil, &RefusedError{Name: req.Name, Reason: re.Reason, Advice: re.Advice}
			}
			return nil, err
		}
		defer unlock()
		req.step("lock")
		n, err := softdelete.CleanStaging(ctx, l, req.Name, req.Options)
		if n > 0 {
			res.Changed = true
			res.note("removed %d staging leftover(s) of an interrupted restore", n)
		}
		if err != nil {
			return res, &FailedError{Name: req.Name, Err: err, State: "a staging leftover of an interrupted restore could not be removed; the instance itself was not changed"}
		}
		if req.ArchiveDir != "" {
			n, err := softdelete.SettleAside(ctx, l, req.Name, req.ArchiveDir, req.Options)
			if err != nil {
				if re, ok := softdelete.IsRefused(err); ok {
					return res, &RefusedError{Name: req.Name, Reason: re.Reason, Advice: re.Advice}
				}
				return res, err
			}
			if n > 0 {
				res.Changed = true
				res.note("recorded %d move(s) aside by an interrupted forced restore", n)
			}
		}
	}
	plans, err := planComponents(ctx, l, req, res)
	if err != nil {
		return res, err
	}
	if len(plans) > 0 {
		set, err := backup.Candidates(ctx, l, req.Name, backup.Options{Discovery: req.Options, ArchiveDir: req.ArchiveDir, Now: req.Now, S3: req.S3})
		if err != nil {
			return res, err
		}
		for _, p := range plans {
			p.cands = set.ByComponent[p.c.Name]
			p.readContent = req.CheckMode
			p.oneRead = !req.CheckMode
			for _, pr := range set.Problems[p.c.Name] {
				res.note("component %s: %s", p.c.Name, pr.Detail)
				p.unlisted = append(p.unlisted, pr.Detail)
			}
			if err := choose(ctx, p, 0, req.Now); err != nil {
				return res, err
			}
			if p.placeholder != "" && p.chosen >= 0 {
				c := p.cands[p.chosen]
				if !p.bornKnown || !c.MTime.After(p.born) {
					when := "its birth time is not recorded by its filesystem"
					if p.bornKnown {
						when = "it was made " + p.born.UTC().Format(time.RFC3339) + ", after that backup"
					}
					p.res.Status, p.res.Reason = StatusPresent, fmt.Sprintf("present but %s (a placeholder) and %s (%s): it may be a new tenant's, not damage; left as it is (force replaces it)", p.placeholder, when, c.Path)
					p.chosen = -1
					p.pin.close()
					p.pin = nil
					continue
				}
				res.note("component %s is %s (a placeholder, made %s, before its backup %s): it is moved aside into quarantine and replaced by it", p.c.Name, p.placeholder, p.born.UTC().Format(time.RFC3339), c.Path)
			}
		}
	}
	defer func() {
		for _, p := range plans {
			p.pin.close()
		}
	}()
	req.step("select")
	var aside *softdelete.Aside
	defer func() { _ = aside.Close() }()
	var failed []string
	var firstErr error
	for _, p := range plans {
		if p.chosen < 0 {
			continue
		}
		if req.CheckMode {
			// Check mode lists what would be restored, as archive
			// restores do. A tree backup's entries were read as the run
			// reads them; a dump's statements are proven only by loading
			// them: say that the run may still fall back.
			p.res.Status = StatusWouldRestore
			res.Restored = append(res.Restored, p.c.Name)
			if p.k.Shape() == kind.Dump {
				res.note("component %s: the dump %s passed every check a plan can make; its content is proven only when the run loads it: if it is rejected then, the run falls back to the next older good backup and says so", p.c.Name, p.res.Backup.Path)
			}
			continue
		}
		if p.present && aside == nil {
			a, unlock, err := softdelete.NewAside(ctx, l, req.Name, req.ArchiveDir, req.Options)
			if err != nil {
				if re, ok := softdelete.IsRefused(err); ok {
					err = &RefusedError{Name: req.Name, Reason: re.Reason, Advice: re.Advice}
				}
				// The present component stays as it is; the others go on.
				p.res.Status, p.res.Reason = StatusFailed, fmt.Sprintf("archive_dir %s, where the present component's move aside is recorded, cannot be used: %v; the component was left as it is", req.ArchiveDir, err)
				failed = append(failed, p.c.Name)
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			defer unlock()
			aside = a
		}
		if err := restoreOne(ctx, l, req, p, aside, res); err != nil {
			failed = append(failed, p.c.Name)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	for _, p := range plans {
		res.Components = append(res.Components, *p.res)
		if p.res.Status == StatusNoGoodBackup && !slices.Contains(failed, p.c.Name) {
			failed = append(failed, p.c.Name)
			if firstErr == nil {
				firstErr = errors.New(p.res.Reason)
			}
		}
	}
	// A required component that is backed up but cannot be restored
	// automatically leaves the instance partial: a finding. A component
	// failed while planned (a link on its path) is one too.
	for _, c := range res.Components {
		if c.Status == StatusFailed && !slices.Contains(failed, c.Component) {
			failed = append(failed, c.Component)
			if firstErr == nil {
				firstErr = fmt.Errorf("component %s: %s", c.Component, c.Reason)
			}
			continue
		}
		lc, _ := l.Component(c.Component)
		if c.Status == StatusNotRestorable && !lc.Optional && (lc.Backup == nil || *lc.Backup) {
			failed = append(failed, c.Component)
			if firstErr == nil {
				firstErr = fmt.Errorf("component %s: %s", c.Component, c.Reason)
			}
		}
	}
	slices.SortStableFunc(res.Components, func(a, b ComponentResult) int {
		return slices.IndexFunc(l.Components, func(c instance.Component) bool { return c.Name == a.Component }) -
			slices.IndexFunc(l.Components, func(c instance.Component) bool { return c.Name == b.Component })
	})
	for _, c := range res.Components {
		if c.Backup != nil && (c.Status == StatusRestored || c.Status == StatusWouldRestore) {
			if res.RecoveryPoint == nil || c.Backup.MTime.Before(*res.RecoveryPoint) {
				t := c.Backup.MTime
				res.RecoveryPoint = &t
			}
		}
	}
	if err := aside.Close(); err != nil && firstErr == nil {
		firstErr = err
		failed = append(failed, "(record of moves aside)")
	}
	return finish(res, req.Name, failed, firstErr), failErr(req.Name, failed, firstErr, res)
}

func finish(res *Result, name string, failed []string, err error) *Result {
	if res.Msg == "" {
		switch {
		case len(failed) > 0:
			res.Msg = fmt.Sprintf("component(s) %s of %s not restored from backups", strings.Join(failed, ", "), name)
		case len(res.Restored) > 0 && !res.Changed:
			res.Msg = fmt.Sprintf("would restore %s of %s from backups (check mode)", strings.Join(res.Restored, ", "), name)
		case len(res.Restored) > 0:
			res.Msg = fmt.Sprintf("restored %s of %s from backups", strings.Join(res.Restored, ", "), name)
		default:
			res.Msg = "nothing to restore from backups"
		}
	}
	return res
}

func failErr(name string, failed []string, err error, res *Result) error {
	if len(failed) == 0 {
		return nil
	}
	state := "every component is absent or complete (none is half-restored); components restored stay restored"
	if len(res.Restored) > 0 {
		state += " (" + strings.Join(res.Restored, ", ") + ")"
	}
	state += "; see each component's reason and refused backups, then run again once fixed, or restore those components by hand"
	return &FailedError{Name: name, Failed: failed, State: state, Err: err}
}

// planComponents decides, for each component asked for, whether it is to
// be restored, and resolves it.
func planComponents(ctx context.Context, l *instance.Layout, req Request, res *Result) ([]*plan, error) {
	inst, err := l.Resolve(ctx, req.Name, req.Options)
	var nf *instance.NotFoundError
	if err != nil && !errors.As(err, &nf) {
		return nil, err
	}
	var plans []*plan
	for _, c := range l.Components {
		if len(req.Components) > 0 && !slices.Contains(req.Components, c.Name) {
			continue
		}
		t, err := softdelete.Target(l.App, req.Name, c)
		if err != nil {
			return nil, err
		}
		k, _ := c.Kind()
		cr := &ComponentResult{Component: c.Name, Type: c.Type, Locator: t.Locator, Refused: []Refused{}}
		p := &plan{c: c, k: k, t: t, res: cr, chosen: -1}
		var st instance.ComponentState
		if inst != nil {
			st, _ = inst.State(c.Name)
		}
		if k.Shape().IsTree() {
			// A link on the way to the component (its {name} element or
			// below) could lead into another instance or out: never
			// written through, never called present.
			link, err := linkOnPath(c, req.Name)
			if err != nil {
				return nil, err
			}
			if link == "" && st.Problem != "" {
				link = st.Problem
			}
			if link != "" {
				cr.Status, cr.Reason = StatusFailed, fmt.Sprintf("%s: a restore never writes through a link nor calls a component behind one present; nothing was written; replace the link by the instance's own directory (or remove it) and run again", link)
				res.Components = append(res.Components, *cr)
				continue
			}
		}
		if st.Present {
			placeholder := ""
			if !req.Force && st.Problem == "" {
				placeholder = k.Placeholder(st.Locator)
			}
			cr.Placeholder = placeholder
			switch {
			case placeholder != "" && req.ArchiveDir != "" && restorable(l, c) == "":
				// An empty directory or file left by a rogue rm of the
				// content: replaced by the backup like force would, moved
				// aside into quarantine; but only by a backup newer than
				// the placeholder's birth (a new tenant's empty directory
				// is not damage), decided once the backup is chosen.
				p.placeholder = placeholder
				p.born, p.bornKnown = birthTime(st.Locator)
			case placeholder != "":
				cr.Status, cr.Reason = StatusPresent, fmt.Sprintf("present but %s (a placeholder): give archive_dir to have it moved aside into quarantine and replaced by its backup, or force", placeholder)
				res.Components = append(res.Components, *cr)
				continue
			case !req.Force:
				cr.Status, cr.Reason = StatusPresent, "present; left as it is (force replaces it)"
				res.Components = append(res.Components, *cr)
				continue
			}
			if st.Problem != "" {
				return nil, &RefusedError{Name: req.Name, Reason: fmt.Sprintf("component %s: %s", c.Name, st.Problem)}
			}
			p.present = true
			p.from, _ = k.QuarantineSource(st)
		}
		if why := restorable(l, c); why != "" {
			cr.Status, cr.Reason = StatusNotRestorable, why
			res.Components = append(res.Components, *cr)
			continue
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// restorable says why component c cannot be restored from its backups
// automatically, or "".
func restorable(l *instance.Layout, c instance.Component) string {
	if c.Backup != nil && !*c.Backup {
		return "backup: false in the layout (not backed up on purpose): restore or recreate it by hand"
	}
	var rules []instance.BackupRule
	for _, r := range l.Backups {
		if r.Component == c.Name {
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 {
		return "no backup rule in the layout covers it"
	}
	k, _ := c.Kind()
	for _, r := range rules {
		switch {
		case r.Format == "any":
			return fmt.Sprintf("its backup rule %s has format any: what the files hold is not known, so it is never guessed; restore it by hand, or give the rule its real format", r.Path)
		case k.Shape().IsTree() && slices.Contains(TreeFormats, r.Format):
		case k.Shape() == kind.Dump && slices.Contains(DumpFormats[c.Type], r.Format):
		default:
			return fmt.Sprintf("a %s component is not restored automatically from %s backups (rule %s); restore it by hand", c.Type, r.Format, r.Path)
		}
	}
	return ""
}

// choose picks, from index from on, the newest candidate that passes every
// check; the newer ones are recorded as refused.
func choose(ctx context.Context, p *plan, from int, now time.Time) error {
	p.chosen = -1
	for i := from; i < len(p.cands); i++ {
		c := p.cands[i]
		var older *backup.Candidate
		for j := i + 1; j < len(p.cands); j++ {
			if p.cands[j].Rule.Path == c.Rule.Path {
				older = &p.cands[j]
				break
			}
		}
		p.pin.close()
		p.pin = nil
		var perr error
		if !streamed(c, p.oneRead) {
			p.pin, perr = pinCandidate(ctx, c)
		}
		if perr != nil {
			// The object cannot be copied where the readers need it:
			// refused, with the size needed and the directory named.
			var se *backup.ScratchSpaceError
			reason := perr.Error()
			if errors.As(perr, &se) {
				reason += "; " + se.Hint()
			}
			p.res.Refused = append(p.res.Refused, Refused{Path: c.Path, MTime: c.MTime.UTC(), Reason: reason})
			continue
		}
		if p.pin != nil {
			c.Content = p.pin.content
			p.cands[i].Content = p.pin.content
		}
		db := dumpDB(p)
		var failed []backup.CheckResult
		var err error
		p.pending = p.oneRead && oneRead(c.Rule.Format)
		if p.pending {
			// The content is checked as it is staged (stage); a
			// candidate refused without reading it is judged whole, for
			// the same reasons Judge gives.
			if failed, err = backup.JudgeMeta(ctx, c, older, db); err == nil && len(failed) > 0 {
				failed, err = backup.Judge(ctx, c, older, db)
			}
		} else {
			failed, err = backup.Judge(ctx, c, older, db)
		}
		if err != nil {
			return err
		}
		p.older = older
		reason := backup.Reasons(failed)
		if len(failed) == 0 && p.readContent && p.k.Shape().IsTree() {
			if _, err := extractTree(ctx, c.Path, c.ContentPath(), c.Rule.Format, p.t.Locator, p.k.Shape() == kind.TreeDir, "", c.MTime); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				reason = "restore: " + err.Error()
			}
		}
		if reason != "" {
			p.pin.close()
			p.pin = nil
			p.res.Refused = append(p.res.Refused, Refused{Path: c.Path, MTime: c.MTime.UTC(), Reason: reason})
			continue
		}
		p.chosen = i
		age := max(now.Sub(c.MTime), 0)
		p.res.Backup = &Backup{Path: c.Path, MTime: c.MTime.UTC(), Size: c.Size, Format: c.Rule.Format,
			AgeSeconds: int64(age.Seconds()), Age: age.Round(time.Minute).String()}
		p.res.Status = StatusWouldRestore
		return nil
	}
	p.res.Backup = nil
	p.res.Status = StatusNoGoodBackup
	if len(p.cands) == 0 && len(p.unlisted) > 0 {
		// Not "none found": what could not be listed may hold backups.
		p.res.Reason = fmt.Sprintf("component %s: its backups could not be listed: %s", p.c.Name, strings.Join(p.unlisted, "; "))
	} else if len(p.cands) == 0 {
		p.res.Reason = fmt.Sprintf("component %s: no backup file found for it", p.c.Name)
	} else {
		p.res.Reason = fmt.Sprintf("component %s: none of its %d backup(s) passes the checks (see refused)", p.c.Name, len(p.cands))
	}
	return nil
}

// oneRead says whether a backup of format is checked in the same read
// that stages it: tar streams (extracted as they are checked) and
// pg_custom dumps (checked while pg_restore loads them).
// streamed reports whether a candidate is restored straight from its
// object, without a local copy: a tar, tar_gz or tar_zst object in a
// restore that checks it in the same read that extracts it (oneRead):
// what is checked is what is extracted, one GET, no room needed in
// TMPDIR. Other formats (pg_custom, which pg_restore reads by seeking;
// zip; SQLite; plain dumps) and the plans of check mode read a copy.
func streamed(c backup.Candidate, oneReadMode bool) bool {
	switch c.Rule.Format {
	case "tar", "tar_gz", "tar_zst":
		return c.Remote() && oneReadMode
	}
	return false
}

func oneRead(format string) bool {
	switch format {
	case "tar", "tar_gz", "tar_zst", "pg_custom":
		return true
	}
	return false
}

// restoreOne stages the chosen backup of one component, falling back to
// older ones when the content cannot be staged, then puts it in place.
func restoreOne(ctx context.Context, l *instance.Layout, req Request, p *plan, aside *softdelete.Aside, res *Result) error {
	start := time.Now()
	defer func() { p.res.DurationSeconds = time.Since(start).Seconds() }()
	env := req.Options.Env()
	for {
		failed, err := stage(ctx, req, p, res)
		if err == nil && len(failed) == 0 {
			if err = p.pin.changed(); err != nil && p.staged != "" {
				_ = p.k.DropStaging(ctx, env, p.staged, false)
				p.staged = ""
			}
		}
		if err == nil && len(failed) == 0 {
			break
		}
		if ctx.Err() != nil {
			if err == nil {
				err = ctx.Err()
			}
			p.res.Status, p.res.Reason = StatusFailed, err.Error()
			return err
		}
		c := p.cands[p.chosen]
		if err != nil && len(failed) == 0 && p.pending {
			// The staging stopped before the content checks made in the
			// same read could end: judge the backup whole now, so that
			// a broken backup is refused for what is wrong with it (and
			// never taken for a fault of the place).
			jf, jerr := backup.Judge(ctx, c, p.older, dumpDB(p))
			if jerr != nil {
				p.res.Status, p.res.Reason = StatusFailed, jerr.Error()
				return jerr
			}
			failed = jf
		}
		if len(failed) == 0 && placeFailure(err) {
			// The backup passed every check; the place could not take
			// it. An older backup would cost data for a fault that is
			// not the backup's: the component fails, as it was.
			p.res.Status, p.res.Reason = StatusFailed, fmt.Sprintf("%v: the backup passed every check and is still the one to use; the failure is the place's, not the backup's, so no older backup was used; nothing was put in place and the staging was removed: fix it (make room, permissions, server) and run again", err)
			return err
		}
		// The backup failed its checks, or its content could not be
		// staged (nothing was put in place): refuse it and fall back to
		// the next good one.
		reason := backup.Reasons(failed)
		if len(failed) == 0 {
			reason = "restore: " + err.Error()
		}
		p.res.Refused = append(p.res.Refused, Refused{Path: c.Path, MTime: c.MTime.UTC(), Reason: reason})
		if cerr := choose(ctx, p, p.chosen+1, req.Now); cerr != nil {
			p.res.Status, p.res.Reason = StatusFailed, cerr.Error()
			return cerr
		}
		if p.chosen < 0 {
			return errors.New(p.res.Reason)
		}
	}
	req.step("stage:" + p.c.Name)
	var moved softdelete.QuarantineMove
	if p.present && p.from != "" {
		m, err := aside.Move(ctx, p.c, p.from)
		if err != nil {
			_ = p.k.DropStaging(ctx, env, p.staged, false)
			p.res.Status, p.res.Reason = StatusFailed, fmt.Sprintf("moving the present component aside failed: %v (it is still in place; the staged backup was removed)", err)
			return err
		}
		moved = m
		res.Changed = true
		p.res.Replaced = m.To
		req.step("aside:" + p.c.Name)
	}
	if err := p.k.PutInPlace(ctx, env, p.t, p.staged); err != nil {
		_ = p.k.DropStaging(ctx, env, p.staged, false)
		state := fmt.Sprintf("%s was not put in place; the staged backup was removed", p.t.Locator)
		if moved.To != "" {
			if berr := aside.Back(ctx, moved); berr != nil {
				state += fmt.Sprintf("; moving the present component back from %s failed too (%v): move it back by hand", moved.To, berr)
			} else {
				state += "; the present component was moved back into place"
				p.res.Replaced = ""
			}
		}
		p.res.Status, p.res.Reason = StatusFailed, fmt.Sprintf("%v: %s", err, state)
		return err
	}
	res.Changed = true
	req.step("place:" + p.c.Name)
	if err := p.k.DropStaging(ctx, env, p.staged, true); err != nil {
		res.note("component %s: the empty staging place %s could not be removed (%v); the next run removes it", p.c.Name, p.staged, err)
	}
	p.res.Status = StatusRestored
	res.Restored = append(res.Restored, p.c.Name)
	if p.res.Backup != nil {
		p.res.Backup.Layout = p.layout
	}
	if len(p.res.Refused) > 0 {
		res.note("component %s: restored from %s (%s old) because %d newer backup(s) were refused", p.c.Name, p.res.Backup.Path, p.res.Backup.Age, len(p.res.Refused))
	}
	return nil
}

// dumpDB is the database a dump of p's component must name ("" for a
// tree).
func dumpDB(p *plan) string {
	if p.c.Type == "postgresql" {
		return p.t.Locator
	}
	return ""
}

// stage restores the chosen backup into the component's staging place.
// When the chosen candidate's content checks are pending (oneRead), they
// are made in the same read (a tar stream) or at the same time (a
// pg_custom dump loaded by pg_restore): failed are the checks it fails,
// and then nothing is staged.
func stage(ctx context.Context, req Request, p *plan, res *Result) ([]backup.CheckResult, error) {
	c := p.cands[p.chosen]
	env := req.Options.Env()
	if p.k.Shape() == kind.Dump {
		// What the kind restored differently from the backup (the
		// database's owner it could not tell…) goes to the result.
		env = env.With(kind.NotesSetting, func(s string) { res.note("component %s: %s", p.c.Name, s) })
		var staged string
		var err error
		var failed []backup.CheckResult
		switch c.Rule.Format {
		case "pg_plain":
			sp, ok := p.k.(interface {
				StagePlain(context.Context, kind.Env, kind.Target, kind.Backup) (string, error)
			})
			if !ok {
				return nil, fmt.Errorf("a %s component cannot be restored from a plain SQL dump", p.c.Type)
			}
			staged, err = sp.StagePlain(ctx, env, p.t, kind.Backup{Format: c.Rule.Format, File: c.Path,
				Plain: func() (io.Reader, func() error, error) { return backup.OpenPlainSQL(c.ContentPath()) }})
		default:
			if !p.pending {
				staged, err = p.k.Stage(ctx, env, p.t, c.ContentPath())
				break
			}
			// The dump is checked (sha256, every chunk of every data
			// block) while pg_restore loads it into the staging
			// database (and inflates every block): a dump that fails
			// the checks stops the load and is dropped; a load that
			// fails is judged whole by restoreOne (the dump is still
			// pending), so that a corrupted block is refused for it.
			sctx, cancel := context.WithCancel(ctx)
			verdict := make(chan error, 1)
			go func() {
				f, _, jerr := backup.JudgeContent(ctx, c, p.older, dumpDB(p), &backup.Staging{PGRestore: true})
				failed = f
				if jerr != nil || len(f) > 0 {
					cancel()
				}
				verdict <- jerr
			}()
			staged, err = p.k.Stage(sctx, env, p.t, c.ContentPath())
			jerr := <-verdict
			cancel()
			if jerr != nil || len(failed) > 0 {
				// The load was stopped at any point, perhaps while the
				// staging database was being created: drop it by name.
				if staged == "" {
					staged = p.k.Staging(p.t)
				}
				if derr := p.k.DropStaging(ctx, env, staged, false); derr != nil && jerr == nil {
					return nil, fmt.Errorf("backup %s: %s; dropping the staging database %s also failed: %w", c.Path, backup.Reasons(failed), staged, derr)
				}
				return failed, jerr
			}
		}
		if err != nil {
			if staged != "" {
				_ = p.k.DropStaging(ctx, env, staged, false)
			}
			return nil, err
		}
		p.staged = staged
		return nil, nil
	}
	top := p.k.Staging(p.t)
	parent := filepath.Dir(top)
	if _, err := os.Lstat(parent); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, fmt.Errorf("component %s: %w", p.c.Name, err)
		}
		res.Changed = true
		res.note("created the parent directory %s of component %s", parent, p.c.Name)
	}
	if err := os.Mkdir(top, 0o700); err != nil {
		return nil, fmt.Errorf("component %s: create staging directory: %w", p.c.Name, err)
	}
	var tree *stagedTree
	var failed []backup.CheckResult
	var err error
	if p.pending {
		tree, failed, err = extractChecked(ctx, c, p.older, p.t.Locator, p.k.Shape() == kind.TreeDir, top)
	} else {
		tree, err = extractTree(ctx, c.Path, c.ContentPath(), c.Rule.Format, p.t.Locator, p.k.Shape() == kind.TreeDir, top, c.MTime)
	}
	if err != nil || len(failed) > 0 {
		if derr := p.k.DropStaging(ctx, env, top, false); derr != nil {
			if err == nil {
				err = fmt.Errorf("backup %s: %s", c.Path, backup.Reasons(failed))
			}
			return nil, fmt.Errorf("%w; removing the staging directory %s also failed: %v", err, top, derr)
		}
		return failed, err
	}
	p.pending = false
	p.staged = top
	p.layout = tree.layout
	p.files, p.bytes = tree.files, tree.bytes
	if n := len(tree.dropped); n > 0 {
		res.note("component %s: the backup %s carries %d extended attribute(s) or ACL(s) that are not restored (first: %s); set them again by hand if the application needs them",
			p.c.Name, c.Path, n, strings.Join(tree.dropped[:min(n, 3)], ", "))
	}
	return nil, nil
}
