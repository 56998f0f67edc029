package softdelete

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mholt/archives"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Restore sources.
const (
	SourceAuto       = "auto"
	SourceQuarantine = "quarantine"
	SourceArchive    = "archive"
	// SourceMixed is reported when some components came from quarantine
	// and others from an archive.
	SourceMixed = "mixed"
)

// RestoreRequest is one restore.
type RestoreRequest struct {
	Name       string
	ArchiveDir string
	// Store, when set, is where archives and tombstones are instead of
	// the file store of ArchiveDir.
	Store  store.Store
	Source string
	// Archive is an explicit archive: an absolute path, or a key of the
	// store (a bare file name is taken in the instance's folder); default:
	// for each component, the newest deletion that holds it.
	Archive string
	// Components restricts the restore to these components.
	Components []string
	// Force replaces present components: the archive is verified and the
	// replacement staged first; only then is each present one moved into
	// quarantine (never overwritten, never removed), and moved back if
	// its replacement cannot be put in place.
	Force bool
	// Relocate accepts an archive whose components were at other places
	// (another host, another layout): each goes where this host's layout
	// says, and the result and the tombstone record from where to where.
	// The manifest's app, instance, components and their types must still
	// match the layout; only locators may differ.
	Relocate  bool
	CheckMode bool
	Options   instance.Options
	// AfterStep, when set, is called after each step ("lock", "verify",
	// "stage:<component>", "aside:<component>" (force), "place:<component>");
	// tests use it to crash the process at step boundaries.
	AfterStep func(step string)
	// Progress, when set, is called with the progress of reading archives
	// back (phases verify and restore), at most every ProgressInterval.
	// Nil: nothing is reported.
	Progress func(archive.Progress)
}

func (r *RestoreRequest) step(name string) {
	if r.AfterStep != nil {
		r.AfterStep(name)
	}
}

// RestoreResult is the outcome of a restore. On failure it is returned
// with the error and says what moved.
type RestoreResult struct {
	Changed bool `json:"changed"`
	// Source is quarantine, archive or mixed.
	Source string `json:"source"`
	// Sources maps each restored component to "quarantine:<tombstone id>"
	// or "archive:<path>".
	Sources  map[string]string `json:"sources"`
	Restored []string          `json:"restored"`
	// NotRestored lists components of the layout left as they are:
	// present (without force), or absent when their archive was written.
	NotRestored []string `json:"not_restored"`
	// Archive is the archive used (the newest, when several were).
	Archive  string   `json:"archive,omitempty"`
	Archives []string `json:"archives"`
	// Replaced lists present components moved aside by force.
	Replaced []QuarantineMove `json:"replaced"`
	// Notes explains every choice that was not the obvious one: a
	// quarantined copy that differs from its archive, a component found
	// in an older deletion, leftovers of an interrupted run removed.
	Notes []string `json:"notes"`
	// Relocated lists the components restored (relocate) to another
	// place than the archive's manifest records.
	Relocated []Relocation `json:"relocated"`
	// Orphans lists the RESTORE.md and sidecar objects found describing
	// an archive the store does not hold, and what was done with them.
	Orphans []Orphan `json:"orphans"`
	Msg     string   `json:"msg,omitempty"`
}

// Relocation is one component restored elsewhere than where it was
// archived from.
type Relocation struct {
	Component string    `json:"component"`
	Type      string    `json:"type"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Archive   string    `json:"archive"`
	Host      string    `json:"host,omitempty"` // the host of the archive's manifest
	At        time.Time `json:"at"`
}

func (r *RestoreResult) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// RestoreRefusedError is a restore refused before the instance changed.
type RestoreRefusedError struct {
	Name   string
	Reason string
	Advice string
	// Err is the finding behind the refusal, if any (a *VerifyError, a
	// *ManifestMismatchError).
	Err error
}

func (e *RestoreRefusedError) Unwrap() error { return e.Err }

func (e *RestoreRefusedError) Error() string {
	return fmt.Sprintf("refusing to restore %s: %s", e.Name, e.Reason)
}

// Hint tells the operator what to do.
func (e *RestoreRefusedError) Hint() string {
	if e.Advice != "" {
		return e.Advice + "; the instance was not changed"
	}
	return "the instance was not changed"
}

// RestoreFailedError is a restore that failed; State says what it left.
type RestoreFailedError struct {
	Name  string
	Err   error
	State string
}

func (e *RestoreFailedError) Error() string {
	return fmt.Sprintf("restore of %s failed: %v", e.Name, e.Err)
}

func (e *RestoreFailedError) Unwrap() error { return e.Err }

// Hint tells the operator what state was left and how to finish.
func (e *RestoreFailedError) Hint() string { return e.State }

// ManifestMismatchError is an archive whose manifest does not describe
// this instance as this host's layout resolves it.
type ManifestMismatchError struct {
	Archive   string
	Component string
	Field     string
	Manifest  string
	Layout    string
}

func (e *ManifestMismatchError) Error() string {
	what := e.Field
	if e.Component != "" {
		what = "component " + e.Component + " " + e.Field
	}
	return fmt.Sprintf("archive %s: %s is %q in its manifest but %q in this host's layout", e.Archive, what, e.Manifest, e.Layout)
}

// Hint tells the operator what to do.
func (e *ManifestMismatchError) Hint() string {
	return "restore writes only where this host's layout says; check the layout, or the archive was not written for this instance or was tampered with"
}

// pick is where one component comes back from.
type pick struct {
	comp    instance.Component
	k       kind.Kind
	t       kind.Target // resolved once, by the component's kind
	locator string      // t.Locator: what this host's layout resolves, path, unit or database
	present bool        // present now (force)
	from    string      // path of a present component to move aside (force)
	// from quarantine
	ts   *Tombstone
	move QuarantineMove
	// from an archive
	archive string
	mc      archive.ManifestComponent
	// archiveTS is the tombstone of the deletion whose archive is used,
	// when there is one: the restore is recorded there (RestoredAt).
	archiveTS *Tombstone
	// placeholder, when set, says why the present component counts as a
	// placeholder that a deletion's content may replace without force.
	placeholder string
	// staged: the staging directory or database, once ready
	staged string
	done   bool
}

func (p *pick) sourceLabel() string {
	if p.ts != nil {
		return "quarantine:" + p.ts.ID
	}
	return "archive:" + p.archive
}

// deletion is one earlier deletion: its tombstone, its archive, or both.
type deletion struct {
	id      string
	ts      *Tombstone
	archive string
	ref     archRef
	head    *archive.Manifest
	headErr error
	read    bool
	// resolve, when set, picks the version of the archive its tombstone
	// recorded (recordedVersion), once, before the manifest is read.
	resolve func(context.Context) error
}

// restorer carries one restore.
type restorer struct {
	l     *instance.Layout
	req   RestoreRequest
	sh    shelf
	refs  map[string]archRef // by the name results give each archive
	res   *RestoreResult
	dels  []*deletion // newest first
	tombs []*Tombstone
	work  string
	aside *Tombstone
	// prior are components an earlier, interrupted relocation put in
	// their new place: recorded with this run's relocations.
	prior []*pick
}

// Restore brings an instance back, each component from the newest
// deletion that holds it: from quarantine (a rename back) when the
// quarantined copy still matches its archive's manifest, else from the
// archive. An archive passes every check of archive.Check, matches this
// host's layout (app, instance, each component's locator) and, when a
// tombstone records it, that tombstone's sha256 before anything is
// written. Each component is staged beside its destination, verified
// against the manifest, then renamed into place: a place is absent or
// complete, never half-filled. A present component is never overwritten;
// restoring a complete instance changes nothing.
func Restore(ctx context.Context, l *instance.Layout, req RestoreRequest) (*RestoreResult, error) {
	ctx = archive.WithProgress(ctx, req.Progress)
	if err := l.ValidateName(req.Name); err != nil {
		return nil, err
	}
	for _, c := range req.Components {
		if _, ok := l.Component(c); !ok {
			return nil, fmt.Errorf("no component %q in layout %s", c, l.Source)
		}
	}
	if req.Source == "" {
		req.Source = SourceAuto
	}
	switch req.Source {
	case SourceAuto, SourceArchive, SourceQuarantine:
	default:
		return nil, fmt.Errorf("source %q: expected auto, quarantine or archive", req.Source)
	}
	if req.Archive != "" && req.Source == SourceQuarantine {
		return nil, &RestoreRefusedError{Name: req.Name, Reason: "an explicit archive and source: quarantine contradict each other"}
	}
	if err := store.CheckKey(req.Name); err != nil {
		return nil, err
	}
	st, err := openStore(ctx, req.Store, req.ArchiveDir)
	if err != nil {
		return nil, err
	}
	sh := shelf{st: st, name: req.Name}
	res := &RestoreResult{Source: req.Source, Sources: map[string]string{}, Restored: []string{}, NotRestored: []string{}, Relocated: []Relocation{}, Orphans: []Orphan{},
		Archives: []string{}, Replaced: []QuarantineMove{}, Notes: []string{}}
	if ok, err := sh.exists(ctx); err != nil || !ok {
		if err == nil {
			err = store.ErrNotExist
		}
		// Nothing was ever archived for this name: that is only an error
		// when something is missing (a re-run of a completed restore, or a
		// restore of an instance that is whole, changes nothing).
		if present, perr := everyWantedPresent(ctx, l, req); perr == nil && present && !req.Force {
			res.NotRestored = wantedNames(l, req)
			res.Msg = "every requested component is present; nothing to restore"
			return res, nil
		}
		return nil, fmt.Errorf("no archives or tombstones for %s under %s: %w", req.Name, st.Location(""), err)
	}
	r := &restorer{l: l, req: req, sh: sh, res: res, refs: map[string]archRef{}}
	if !req.CheckMode {
		unlockHost, err := lockInstance(l, req.Name)
		if err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				return nil, &RestoreRefusedError{Name: req.Name, Reason: re.Reason, Advice: re.Advice}
			}
			return nil, err
		}
		defer unlockHost()
		unlock, err := sh.lock(ctx)
		if err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				return nil, &RestoreRefusedError{Name: req.Name, Reason: re.Reason, Advice: re.Advice}
			}
			return nil, err
		}
		defer unlock()
		req.step("lock")
		sh.tidy()
		n, err := cleanStaging(ctx, l, req.Name, req.Options)
		if n > 0 {
			res.Changed = true
			res.note("removed %d staging leftover(s) of an interrupted restore", n)
		}
		if err != nil {
			return res, &RestoreFailedError{Name: req.Name, Err: err,
				State: "a staging leftover of an interrupted restore could not be removed; the instance itself was not changed"}
		}
	}
	if orphans, err := sweepOrphans(ctx, sh, req.CheckMode); err != nil {
		return res, fmt.Errorf("look for RESTORE.md and sidecars without their archive under %s: %w", sh.where(), err)
	} else {
		res.Orphans = orphans
		res.Changed = res.Changed || orphansChanged(orphans)
		for _, o := range orphans {
			res.note("%s", o.String())
		}
	}
	var settled []string
	if !req.CheckMode {
		if n, err := settleAside(ctx, sh, l.App, req.Options); err != nil {
			return res, err
		} else if n > 0 {
			res.Changed = true
			res.note("recorded %d move(s) aside by an interrupted forced restore", n)
		}
		// A deletion killed while rolling back is finished first: its
		// quarantine, not its archive, holds the instance's last state.
		settled, err = settleRollingBack(ctx, sh, l.App, req)
		if len(settled) > 0 {
			res.Changed = true
			res.Notes = append(res.Notes, settled...)
		}
		if err != nil {
			return res, err
		}
	}
	if req.CheckMode {
		if settled, err = settleRollingBack(ctx, sh, l.App, req); err != nil {
			return res, err
		}
		if len(settled) > 0 {
			// What the run would restore depends on what moving back
			// leaves missing: not predicted further.
			res.Changed = true
			res.Notes = append(res.Notes, settled...)
			res.Msg = strings.Join(settled, "; ")
			return res, nil
		}
	}
	out, err := r.run(ctx)
	if out != nil && len(settled) > 0 && out.Msg != "" && !strings.Contains(out.Msg, settled[0]) {
		out.Msg = strings.Join(settled, "; ") + "; " + out.Msg
	}
	if err != nil && out == nil {
		out = res
	}
	if out != nil && len(out.Notes) > 0 && out.Msg == "" && err == nil {
		out.Msg = strings.Join(out.Notes, "; ")
	}
	return out, err
}

func (r *restorer) run(ctx context.Context) (*RestoreResult, error) {
	req, res := r.req, r.res
	inst, err := r.l.Resolve(ctx, req.Name, req.Options)
	var nf *instance.NotFoundError
	if err != nil && !errors.As(err, &nf) {
		return nil, err
	}
	var picks []*pick
	var occupied []occupant
	for _, c := range r.l.Components {
		if len(req.Components) > 0 && !slices.Contains(req.Components, c.Name) {
			continue
		}
		st, _ := inst.State(c.Name)
		t, err := target(r.l.App, req.Name, c)
		if err != nil {
			return nil, err
		}
		k, _ := c.Kind()
		p := &pick{comp: c, k: k, t: t, locator: t.Locator}
		if st.Present {
			if !req.Force {
				if what := k.Placeholder(st.Locator); what != "" {
					// Replaced like force would, if a deletion holds
					// content for it (decided once its source is known).
					p.present, p.from, p.placeholder = true, st.Locator, what
					picks = append(picks, p)
					continue
				}
				res.NotRestored = append(res.NotRestored, c.Name)
				if req.Relocate {
					p.present, p.from = true, st.Locator
					occupied = append(occupied, occupant{p: p, problem: st.Problem})
				}
				continue
			}
			if st.Problem != "" {
				return nil, &RestoreRefusedError{Name: req.Name, Reason: fmt.Sprintf("component %s: %s", c.Name, st.Problem)}
			}
			p.present = true
			p.from, _ = k.QuarantineSource(st)
		}
		picks = append(picks, p)
	}
	if len(picks) == 0 && len(occupied) == 0 {
		res.Msg = "every requested component is present; nothing to restore"
		return res, nil
	}
	if err := r.loadDeletions(ctx); err != nil {
		return nil, err
	}
	// With relocate, what is at the new places is checked even when every
	// component is present: an earlier relocation killed after its last
	// component was placed left its record to write, and a stranger's
	// content there is never taken for the instance.
	if err := r.checkOccupied(ctx, occupied); err != nil {
		return nil, err
	}
	if len(picks) == 0 {
		return r.recordPrior(ctx)
	}
	var chosen []*pick
	var missing []string
	for _, p := range picks {
		ok, err := r.choose(ctx, p)
		if err != nil {
			return nil, err
		}
		if p.placeholder != "" {
			// A placeholder is replaced only by content: when no
			// deletion holds the component, or what it holds is empty
			// too, the placeholder is what there is, left as it is.
			if !ok || r.sourceEmpty(p) {
				if !slices.Contains(res.NotRestored, p.comp.Name) {
					res.NotRestored = append(res.NotRestored, p.comp.Name)
				}
				continue
			}
			res.note("component %s is %s, made after the deletion (a placeholder, as a package script or systemd-tmpfiles leaves): it is moved aside into quarantine and replaced by the deleted content from %s",
				p.comp.Name, p.placeholder, strings.TrimPrefix(strings.TrimPrefix(p.sourceLabel(), "archive:"), "quarantine:"))
		}
		switch {
		case ok:
			chosen = append(chosen, p)
		case p.archive == "" && p.ts == nil && !slices.Contains(res.NotRestored, p.comp.Name):
			missing = append(missing, p.comp.Name)
		}
	}
	if len(missing) > 0 {
		where := "any archive or quarantine under " + r.sh.where()
		if req.Archive != "" {
			where = "archive " + req.Archive
		} else if req.Source == SourceQuarantine {
			where = "any quarantine of " + req.Name
		}
		return nil, &RestoreRefusedError{Name: req.Name,
			Reason: fmt.Sprintf("component(s) %s of this host's layout are found in no deletion in %s (neither their content nor a record that they were absent)", strings.Join(missing, ", "), where),
			Advice: "restore the other components with components: [...], or find an archive that holds them"}
	}
	// A required, backed-up component that would stay absent leaves the
	// instance partial: refuse before anything moves, unless the operator
	// named the components to restore and left it out.
	var partial []string
	for _, p := range picks {
		if p.placeholder == "" && p.archive == "" && p.ts == nil && slices.Contains(res.NotRestored, p.comp.Name) &&
			!p.comp.Optional && (p.comp.Backup == nil || *p.comp.Backup) {
			partial = append(partial, p.comp.Name)
		}
	}
	if len(partial) > 0 {
		return nil, &RestoreRefusedError{Name: req.Name,
			Reason: fmt.Sprintf("required component(s) %s would stay absent (%s): the instance would be partial", strings.Join(partial, ", "), strings.Join(res.Notes, "; ")),
			Advice: "restore the other components explicitly with components: [...] if a partial instance is what you want"}
	}
	// Verify every archive used, whole, before anything is written.
	manifests := map[string]*archive.Manifest{}
	for _, p := range chosen {
		if p.archive == "" {
			continue
		}
		m, ok := manifests[p.archive]
		if !ok {
			if m, err = r.verifyArchive(ctx, p.archive); err != nil {
				return nil, err
			}
			manifests[p.archive] = m
			res.Archives = append(res.Archives, p.archive)
		}
		i := slices.IndexFunc(m.Components, func(mc archive.ManifestComponent) bool { return mc.Name == p.comp.Name })
		if i < 0 || m.Components[i].ArchivePath == "" {
			return nil, &RestoreRefusedError{Name: req.Name, Reason: fmt.Sprintf("archive %s changed while it was read: component %s is gone from it", p.archive, p.comp.Name)}
		}
		p.mc = m.Components[i]
	}
	req.step("verify")
	sort.Sort(sort.Reverse(sort.StringSlice(res.Archives)))
	if len(res.Archives) > 0 {
		res.Archive = res.Archives[0]
	}
	nq, na := 0, 0
	for _, p := range chosen {
		res.Restored = append(res.Restored, p.comp.Name)
		res.Sources[p.comp.Name] = p.sourceLabel()
		if p.ts != nil {
			nq++
		} else {
			na++
		}
		if p.present {
			res.Replaced = append(res.Replaced, QuarantineMove{Component: p.comp.Name, Type: p.comp.Type, From: p.from})
		}
	}
	switch {
	case nq > 0 && na > 0:
		res.Source = SourceMixed
	case nq > 0:
		res.Source = SourceQuarantine
	case na > 0:
		res.Source = SourceArchive
	}
	if len(chosen) > 0 {
		// A present component left as it is while others come back: say
		// so, since it may not be what was deleted.
		for _, name := range res.NotRestored {
			c, _ := r.l.Component(name)
			if st, _ := inst.State(name); st.Present && archive.ShapeOf(c.Type) != kind.None {
				res.note("component %s is present and was left as it is (a restore never replaces without force); if it is not what was deleted, run again with force: true and components: [%s]", name, name)
			}
		}
	}
	if len(chosen) == 0 {
		return r.recordPrior(ctx)
	}
	if req.CheckMode {
		res.Changed = true
		return res, nil
	}
	// Stage every component from an archive; nothing is in place yet.
	if err := r.stageAll(ctx, chosen, manifests); err != nil {
		r.unstage(ctx, chosen)
		return res, &RestoreFailedError{Name: req.Name, Err: err, State: r.state(chosen, "nothing was put in place and every staging copy was removed; fix the cause and run again")}
	}
	// Place: move present components aside last, rename into place, move
	// back on failure.
	for _, p := range chosen {
		if err := r.place(ctx, p); err != nil {
			r.unstage(ctx, chosen)
			if cerr := r.closeAside(); cerr != nil {
				err = fmt.Errorf("%w; recording the moves aside also failed: %v", err, cerr)
			}
			return res, &RestoreFailedError{Name: req.Name, Err: err, State: r.state(chosen, "run again to restore the remaining components")}
		}
		req.step("place:" + p.comp.Name)
	}
	r.unstage(ctx, chosen)
	if err := r.recordRelocations(ctx, append(slices.Clone(chosen), r.prior...)); err != nil {
		return res, &RestoreFailedError{Name: req.Name, Err: err, State: r.state(chosen, "every component is in place; only the record of the relocation failed")}
	}
	if err := r.finish(ctx, chosen); err != nil {
		return res, &RestoreFailedError{Name: req.Name, Err: err, State: r.state(chosen, "every component is in place; only the bookkeeping failed")}
	}
	return res, nil
}

// state describes what a failed restore left.
func (r *restorer) state(chosen []*pick, advice string) string {
	var placed, aside []string
	for _, p := range chosen {
		if p.done {
			placed = append(placed, p.comp.Name)
		}
	}
	for _, m := range r.res.Replaced {
		if m.To != "" {
			aside = append(aside, m.Component+" (in "+m.To+")")
		}
	}
	// The result lists what was done, not what was planned.
	r.res.Restored = append([]string{}, placed...)
	moved := []QuarantineMove{}
	for _, m := range r.res.Replaced {
		if m.To != "" {
			moved = append(moved, m)
		}
	}
	r.res.Replaced = moved
	s := "restored and complete: " + orNone(placed)
	if len(aside) > 0 {
		s += "; moved aside by force: " + strings.Join(aside, ", ")
	}
	if len(placed) > 0 || len(aside) > 0 {
		r.res.Changed = true
	}
	return s + "; every other component is as it was; " + advice
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// layoutLocator is what this host's layout resolves for a component of an
// instance: a path, a unit name or a database name (Kind.Locate).
func layoutLocator(c instance.Component, name string) (string, error) {
	k, err := kindOf(c.Type)
	if err != nil {
		return "", err
	}
	return k.Locate(c, name)
}

// loadDeletions lists earlier deletions, newest first: every tombstone
// with its archive, and archives no tombstone names.
func (r *restorer) loadDeletions(ctx context.Context) error {
	all, err := r.sh.tombstones(ctx)
	if err != nil {
		return err
	}
	// Only this app's instance's deletions: another app's instance of
	// the same name shares archive_dir/<name>/.
	var tombs []*Tombstone
	for _, t := range all {
		if ofApp(t, r.l.App) {
			tombs = append(tombs, t)
		}
	}
	r.tombs = tombs
	for _, t := range tombs {
		if t.overruled != "" {
			r.res.note("%s", t.overruled)
		}
	}
	byArchive := map[string]*Tombstone{}
	for _, t := range tombs {
		if t.ArchivePath != "" {
			byArchive[t.archiveFile()] = t
		}
	}
	if r.req.Archive != "" {
		ref, err := r.explicitArchive()
		if err != nil {
			return err
		}
		r.refs[r.req.Archive] = ref
		base := path.Base(ref.key)
		d := &deletion{id: base, ts: byArchive[base], archive: r.req.Archive, ref: ref}
		r.pinRecorded(d)
		r.dels = []*deletion{d}
		return nil
	}
	for _, t := range tombs {
		if t.State == StateRollingBack {
			// Never a source: its archive missed late changes. A restore
			// (not in check mode) moved it back before this point.
			r.res.note("the deletion %s was rolling back after late changes (tombstone %s): the restore moves its components back from its quarantine first, then restores what is still missing", t.ID, t.Path)
			continue
		}
		if t.State == StateArchiving || t.State == StateAbandoned {
			// A deletion that never completed: its archive is vouched for
			// by nothing that restore could check it against.
			if t.ArchivePath != "" {
				r.res.note("archive %s belongs to a deletion that did not complete (tombstone state %s): not used automatically; pass archive: to restore from it", t.ArchivePath, t.State)
			}
			continue
		}
		d := &deletion{id: t.ID, ts: t}
		if t.ArchivePath != "" {
			d.ref = archRef{st: r.sh.st, key: r.sh.key(t.archiveFile())}
			d.archive = d.ref.loc()
			r.refs[d.archive] = d.ref
			r.pinRecorded(d)
		}
		r.dels = append(r.dels, d)
	}
	files, err := r.sh.archives(ctx)
	if err != nil {
		return err
	}
	anyApp := map[string]bool{}
	for _, t := range all {
		if t.ArchivePath != "" {
			anyApp[t.archiveFile()] = true
		}
	}
	for _, f := range files {
		if !anyApp[f] {
			f = r.sh.loc(f)
			// No tombstone recorded its sha256: it could be anything
			// dropped into the directory. Only an explicit archive: uses it.
			r.res.note("archive %s has no tombstone: not used automatically; pass archive: to restore from it", f)
		}
	}
	sort.SliceStable(r.dels, func(i, j int) bool { return r.dels[i].id > r.dels[j].id })
	return nil
}

// pinRecorded has d's archive read at the version its tombstone
// recorded, in a store that keeps versions (recordedVersion), once its
// manifest is first needed.
func (r *restorer) pinRecorded(d *deletion) {
	t := d.ts
	if t == nil || t.ArchiveSHA256 == "" {
		return
	}
	d.resolve = func(ctx context.Context) error {
		ref, notes, err := recordedVersion(ctx, d.ref, t.ArchiveSHA256, t.Path)
		if err != nil {
			return err
		}
		d.ref = ref
		r.refs[d.archive] = ref
		for _, n := range notes {
			r.res.note("%s", n)
		}
		return nil
	}
}

// manifest reads (once) the manifest of a deletion's archive.
func (d *deletion) manifest() (*archive.Manifest, error) {
	if !d.read {
		d.read = true
		if d.archive == "" {
			d.headErr = errors.New("no archive")
		} else if d.resolve != nil {
			d.headErr = d.resolve(context.Background())
		}
		if d.headErr == nil && d.archive != "" {
			d.head, d.headErr = readManifestHead(context.Background(), d.ref.st, d.ref.key)
		}
	}
	return d.head, d.headErr
}

// choose finds where a component comes back from. It returns false when
// the component is not restored: known absent at its deletion (listed in
// NotRestored with a note), or found nowhere (the caller fails).
func (r *restorer) choose(ctx context.Context, p *pick) (bool, error) {
	req, res := r.req, r.res
	name := p.comp.Name
	useQ := req.Archive == "" && req.Source != SourceArchive
	useA := req.Source != SourceQuarantine
	absentAt, absentUnit := "", false
	for _, d := range r.dels {
		m, merr := d.manifest()
		var mc *archive.ManifestComponent
		if merr == nil {
			if i := slices.IndexFunc(m.Components, func(c archive.ManifestComponent) bool { return c.Name == name }); i >= 0 {
				mc = &m.Components[i]
			}
		}
		// A tombstone without an archive (components replaced by force) is
		// never a source: nothing can vouch for its quarantine.
		if useQ && d.ts != nil && d.archive != "" && d.ts.State != StateRestored && d.ts.State != StatePurged {
			if i := slices.IndexFunc(d.ts.Components, func(q QuarantineMove) bool { return q.Component == name }); i >= 0 {
				q := d.ts.Components[i]
				held, err := quarantineHeld(ctx, req.Options, q)
				if err != nil {
					return false, err
				}
				moved := held && (q.Type != p.comp.Type || p.k.MoveLocator(q.move()) != p.locator)
				if moved {
					if err := r.quarantineElsewhere(d, p, q); err != nil {
						return false, err
					}
				}
				if held && !moved {
					why := ""
					switch {
					case merr != nil:
						why = fmt.Sprintf("its archive cannot be read to check it (%v)", merr)
					case mc == nil || (mc.ArchivePath == "" && p.k.Shape() != kind.None):
						why = "its archive does not hold it"
					case p.k.Shape() == kind.Dump && req.CheckMode:
						res.note("check mode: the quarantined %s %s would be compared with the dump in %s before it is renamed back, and restored from that archive if it differs", p.k.Noun(), q.To, d.archive)
					case p.k.Shape() == kind.Dump:
						if why, err = r.compareQuarantinedDump(ctx, p.k, q, name, d.archive, m); err != nil {
							return false, err
						}
					case p.k.Shape().IsTree():
						why = compareQuarantine(q, name, m, r.instancePlaces(d))
					}
					if why == "" {
						p.ts, p.move = d.ts, q
						return true, nil
					}
					if req.Source == SourceQuarantine {
						return false, &RestoreRefusedError{Name: req.Name,
							Reason: fmt.Sprintf("the quarantined copy of %s (%s) does not match its archive: %s", name, q.To, why),
							Advice: "use source: archive (or auto) to restore from the verified archive"}
					}
					res.note("the quarantined copy of %s (%s) does not match its archive: %s; restoring %s from the archive instead", name, q.To, why, name)
				}
			}
		}
		if !useA {
			continue
		}
		if merr != nil {
			if d.archive == "" {
				continue // a tombstone without an archive (force's own)
			}
			if d.ts != nil && d.ts.State == StatePurged && (errors.Is(merr, store.ErrNotExist) || errors.Is(merr, fs.ErrNotExist)) {
				continue // purged for good: tombstone kept as a record
			}
			// The newest deletion that could hold the component cannot be
			// read: never pass over it silently to older data.
			var nv *NoRecordedVersionError
			if errors.As(merr, &nv) {
				return false, &RestoreRefusedError{Name: req.Name, Reason: nv.Error(), Err: nv, Advice: nv.Hint()}
			}
			state := ""
			if d.ts != nil {
				state = " (tombstone state " + d.ts.State + ")"
			}
			ve := &archive.VerifyError{Archive: d.archive, Msg: "manifest unreadable" + state + ": " + merr.Error()}
			advice := "name an older archive explicitly with archive: if this one is lost"
			// An error that says what to give (an encrypted archive
			// without its identity: decrypt_identity_file) says it.
			var h interface{ Hint() string }
			if errors.As(merr, &h) && h.Hint() != "" {
				advice = h.Hint()
			}
			return false, &RestoreRefusedError{Name: req.Name, Reason: ve.Error(), Err: ve, Advice: advice}
		}
		if mc == nil {
			continue // another layout, or a component added since: look further back
		}
		if mc.ArchivePath == "" {
			if mc.Present {
				// Present but not archivable (a systemd unit): older
				// deletions hold older states of it, never this one.
				absentAt, absentUnit = d.archive, true
				break
			}
			// Absent when this deletion ran (perhaps deleted earlier under
			// another layout): an older deletion may hold it.
			if absentAt == "" {
				absentAt = d.archive
			}
			continue
		}
		if absentAt != "" {
			res.note("component %s was absent when %s was written; restoring it from the older %s", name, absentAt, d.archive)
		}
		p.archive = d.archive
		p.archiveTS = d.ts
		return true, nil
	}
	if absentAt != "" {
		why := "was absent when archive " + absentAt + " was written, and no older deletion holds it"
		if absentUnit {
			why = "is a systemd unit, which archives do not hold, and no quarantine holds its unit file (restore it by hand)"
		}
		res.NotRestored = append(res.NotRestored, name)
		res.note("component %s not restored: it %s", name, why)
	}
	return false, nil
}

// occupant is a component of the layout already present where this
// host's layout puts it, found by a restore with relocate.
type occupant struct {
	p       *pick
	problem string // discovery's finding on it (a link leading out)
}

// checkOccupied refuses a relocation whose new place is already taken by
// something that is not the instance's archived content: a stranger's
// directory, a link to another instance's data, a database with other
// content. Without relocate a present component is simply left as it is;
// with relocate, the deletion recorded the component elsewhere, so what is
// at the new place was never known to be this instance's, and restoring
// the other components around it would assemble an instance out of
// someone else's data. What holds exactly the archived content (an
// earlier, interrupted relocation put it there) is left as it is, so that
// a re-run converges. Nothing is changed before this check.
func (r *restorer) checkOccupied(ctx context.Context, occupied []occupant) error {
	for _, o := range occupied {
		p, name := o.p, o.p.comp.Name
		d, m, mc := r.newestHolding(name)
		if mc == nil || mc.Locator == "" || mc.Locator == p.locator || p.k.Shape() == kind.None {
			continue // not relocated (or nothing to compare): left as it is
		}
		why := o.problem
		var err error
		if why == "" {
			switch {
			case p.k.Shape().IsTree():
				why = compareQuarantine(QuarantineMove{Component: name, Type: p.comp.Type, To: p.from}, name, m, r.instancePlaces(d))
			case p.k.Shape() == kind.Dump:
				why, err = r.compareQuarantinedDump(ctx, p.k, QuarantineMove{Component: name, Type: p.comp.Type, From: p.locator, To: p.locator}, name, d.archive, m)
				if err != nil {
					return err
				}
			}
		}
		if why != "" {
			if parts := strings.Split(why, "; "); len(parts) > 3 {
				why = strings.Join(parts[:3], "; ") + fmt.Sprintf("; and %d more difference(s)", len(parts)-3)
			}
			return &RestoreRefusedError{Name: r.req.Name,
				Reason: fmt.Sprintf("relocate would put component %s (%s, archived from %q in %s) at %q, but something that is not its archived content is already there: %s",
					name, p.comp.Type, mc.Locator, d.archive, p.locator, why),
				Advice: fmt.Sprintf("%s was never this instance's: check the layout, or move it away by hand and run again", p.locator)}
		}
		r.res.note("component %s is already at its new place %s with the content of %s (an earlier relocation): left as it is", name, p.locator, d.archive)
		p.mc, p.archive, p.done = *mc, d.archive, true
		r.prior = append(r.prior, p)
	}
	return nil
}

// newestHolding returns the newest readable deletion whose manifest
// records the component, its manifest and its entry.
func (r *restorer) newestHolding(name string) (*deletion, *archive.Manifest, *archive.ManifestComponent) {
	for _, d := range r.dels {
		m, err := d.manifest()
		if err != nil {
			continue
		}
		if i := slices.IndexFunc(m.Components, func(c archive.ManifestComponent) bool { return c.Name == name }); i >= 0 && m.Components[i].ArchivePath != "" {
			return d, m, &m.Components[i]
		}
	}
	return nil, nil, nil
}

// quarantineElsewhere decides about a component held in quarantine at
// another place than this host's layout now says (the layout changed
// since the deletion). Without relocate, or with source: quarantine, it is
// a refusal that says what to do. With relocate, the quarantined copy is
// not renamed across parents (the new place may be on another filesystem,
// and a rename out of one component's trash into another's place is
// exactly what confinement forbids): the component comes back from the
// deletion's verified archive, written where the layout says, like any
// relocation; the quarantined copy stays where it is, recorded by its
// tombstone, until purge removes it.
func (r *restorer) quarantineElsewhere(d *deletion, p *pick, q QuarantineMove) error {
	req := r.req
	at := fmt.Sprintf("tombstone %s says component %s (%s) was at %q, quarantined in %q; this host's layout says %s %q",
		d.ts.Path, p.comp.Name, q.Type, q.From, q.To, p.comp.Type, p.locator)
	switch {
	case q.Type != p.comp.Type:
		return &RestoreRefusedError{Name: req.Name, Reason: at + ": the type differs, which relocate never allows"}
	case !req.Relocate:
		return &RestoreRefusedError{Name: req.Name, Reason: at,
			Advice: "if the layout moved this component on purpose, run again with relocate: true: it is restored from the deletion's verified archive to the place the layout says (the quarantined copy stays until purge)"}
	case req.Source == SourceQuarantine:
		return &RestoreRefusedError{Name: req.Name, Reason: at + "; relocate does not rename a quarantined copy to a new place",
			Advice: "run again with relocate: true and source: archive (or auto): the component is restored from the deletion's verified archive to the place the layout says"}
	}
	r.res.note("component %s is quarantined in %s (from %s) but this host's layout now says %s: relocate restores it from the verified archive %s to %s; the quarantined copy is left where it is and purge removes it",
		p.comp.Name, q.To, q.From, p.locator, d.archive, p.locator)
	return nil
}

// verifyArchive applies archive.Check, then this host's layout and the
// tombstone's record of the archive.
func (r *restorer) verifyArchive(ctx context.Context, path string) (*archive.Manifest, error) {
	for _, d := range r.dels {
		if d.archive == path {
			// The version its tombstone recorded (choose read it first).
			if _, err := d.manifest(); err != nil {
				var nv *NoRecordedVersionError
				if errors.As(err, &nv) {
					return nil, &RestoreRefusedError{Name: r.req.Name, Reason: nv.Error(), Err: nv, Advice: nv.Hint()}
				}
			}
		}
	}
	ref, ok := r.refs[path]
	if !ok {
		return nil, fmt.Errorf("archive %s: not one this restore listed", path)
	}
	m, digest, err := archive.Check(ctx, ref.st, ref.key)
	if err != nil {
		return nil, &RestoreRefusedError{Name: r.req.Name, Reason: err.Error(), Advice: "do not rely on this archive", Err: err}
	}
	if info, err := ref.st.Stat(ctx, ref.key); err == nil && info.Hidden {
		r.res.note("archive %s is hidden by a delete marker (a plain DELETE in the versioned bucket); its newest version, checked above, was read", path)
	}
	for _, t := range r.tombs {
		if t.ArchivePath != "" && t.archiveFile() == baseName(ref.key) && t.ArchiveSHA256 != digest {
			return nil, &RestoreRefusedError{Name: r.req.Name,
				Reason: fmt.Sprintf("archive %s has sha256 %s but tombstone %s recorded %s when it was written: it was replaced or tampered with", path, digest, t.Path, t.ArchiveSHA256),
				Advice: "do not rely on this archive"}
		}
	}
	if err := checkManifestLayout(r.l, r.req.Name, path, m, r.req.Relocate); err != nil {
		return nil, &RestoreRefusedError{Name: r.req.Name, Reason: err.Error(), Advice: "restore writes only where this host's layout says", Err: err}
	}
	return m, nil
}

// checkManifestLayout refuses a manifest that describes another app or
// instance, or a component at another place than this host's layout.
//
// With relocate, locators (paths, database names) may differ: the
// component goes where the layout says.
func checkManifestLayout(l *instance.Layout, name, arch string, m *archive.Manifest, relocate bool) error {
	if m.App != l.App {
		return &ManifestMismatchError{Archive: arch, Field: "app", Manifest: m.App, Layout: l.App}
	}
	if m.Instance != name {
		return &ManifestMismatchError{Archive: arch, Field: "instance", Manifest: m.Instance, Layout: name}
	}
	for _, mc := range m.Components {
		c, ok := l.Component(mc.Name)
		if !ok {
			continue
		}
		if mc.Type != c.Type {
			return &ManifestMismatchError{Archive: arch, Component: mc.Name, Field: "type", Manifest: mc.Type, Layout: c.Type}
		}
		want, err := layoutLocator(c, name)
		if err != nil {
			return err
		}
		if mc.Locator != want && (mc.Present || mc.Locator != "") && !relocate {
			return &ManifestMismatchError{Archive: arch, Component: mc.Name, Field: "locator", Manifest: mc.Locator, Layout: want}
		}
		if archive.ShapeOf(mc.Type) == kind.TreeFile && mc.ArchivePath != "" {
			for _, e := range m.Files {
				if e.Component == mc.Name && e.Type == "file" && baseName(e.Name()) != filepath.Base(want) {
					return &ManifestMismatchError{Archive: arch, Component: mc.Name, Field: "file name", Manifest: baseName(e.Name()), Layout: filepath.Base(want)}
				}
			}
		}
	}
	for _, d := range m.Databases {
		if c, ok := l.Component(d.Component); ok {
			want, err := layoutLocator(c, name)
			if err != nil {
				return err
			}
			if d.Database != want && !relocate {
				return &ManifestMismatchError{Archive: arch, Component: d.Component, Field: "database", Manifest: d.Database, Layout: want}
			}
		}
	}
	return nil
}

func baseName(name string) string {
	if i := strings.LastIndex(name, "/"); i >= 0 {
		return name[i+1:]
	}
	return name
}

// place puts one component into place: the present one (force) is moved
// aside first, and back if the new one cannot be put in place.
func (r *restorer) place(ctx context.Context, p *pick) error {
	aside := QuarantineMove{}
	if p.present && p.from != "" {
		if err := r.ensureAside(); err != nil {
			return err
		}
		aside = QuarantineMove{Component: p.comp.Name, Type: p.comp.Type, From: p.from, To: p.k.QuarantineTarget(p.from, r.aside.ID)}
		r.aside.Components = append(r.aside.Components, aside)
		if err := r.aside.write(); err != nil {
			return err
		}
		if err := p.k.Quarantine(ctx, r.req.Options.Env(), aside.move()); err != nil {
			return fmt.Errorf("move present component %s aside: %w", p.comp.Name, err)
		}
		// Its own record of the retention, as a deletion's quarantine
		// keeps one (the tombstone says so: retention_records).
		if err := keepRetention(ctx, r.req.Options.Env(), p.k, r.aside, aside); err != nil {
			if berr := p.k.Unquarantine(ctx, r.req.Options.Env(), aside.move()); berr != nil {
				r.res.Changed = true
				return fmt.Errorf("record the retention of component %s moved aside into %s: %w; moving it back also failed: %v", p.comp.Name, aside.To, err, berr)
			}
			r.aside.Components = slices.DeleteFunc(r.aside.Components, func(m QuarantineMove) bool { return m.Component == p.comp.Name })
			_ = r.aside.write()
			return fmt.Errorf("record the retention of component %s moved aside into %s: %w (it was moved back into place)", p.comp.Name, aside.To, err)
		}
		for i := range r.res.Replaced {
			if r.res.Replaced[i].Component == p.comp.Name {
				r.res.Replaced[i] = aside
			}
		}
		r.res.Changed = true
		r.req.step("aside:" + p.comp.Name)
	}
	err := r.putInPlace(ctx, p)
	if err == nil {
		p.done = true
		r.res.Changed = true
		return nil
	}
	if aside.To != "" {
		if berr := p.k.Unquarantine(ctx, r.req.Options.Env(), aside.move()); berr != nil {
			return fmt.Errorf("%w; moving the present component %s back from %s also failed: %v", err, p.comp.Name, aside.To, berr)
		}
		for i := range r.res.Replaced {
			if r.res.Replaced[i].Component == p.comp.Name {
				r.res.Replaced[i].To = ""
			}
		}
		r.aside.Components = slices.DeleteFunc(r.aside.Components, func(m QuarantineMove) bool { return m.Component == p.comp.Name })
		_ = r.aside.write()
		return fmt.Errorf("%w (the present component %s was moved back into place)", err, p.comp.Name)
	}
	return err
}

func (r *restorer) putInPlace(ctx context.Context, p *pick) error {
	if p.ts != nil {
		return p.k.Unquarantine(ctx, r.req.Options.Env(), p.move.move())
	}
	return p.k.PutInPlace(ctx, r.req.Options.Env(), p.t, p.staged)
}

// ensureAside writes the tombstone of components moved aside by force
// before the first of them moves.
func (r *restorer) ensureAside() error {
	if r.aside != nil {
		return nil
	}
	now := time.Now().UTC()
	id := newID(now)
	r.aside = r.sh.newTombstone(&Tombstone{ID: id, Instance: r.req.Name, App: r.l.App, Components: []QuarantineMove{},
		Reason: asideReason, DeletedAt: now, PurgeAfter: now.Add(30 * 24 * time.Hour),
		State: StateQuarantining, ToolVersion: archive.Version, RetentionRecords: true})
	return r.aside.write()
}

// closeAside records the moves aside of force as done: quarantined, or
// restored when every one was moved back.
func (r *restorer) closeAside() error {
	if r.aside == nil {
		return nil
	}
	r.aside.State = StateQuarantined
	if len(r.aside.Components) == 0 {
		r.aside.State = StateRestored
	}
	return r.aside.write()
}

// finish records the new state in tombstones.
func (r *restorer) finish(ctx context.Context, chosen []*pick) error {
	if err := r.closeAside(); err != nil {
		return err
	}
	seen := map[*Tombstone]bool{}
	for _, p := range chosen {
		if p.ts == nil || seen[p.ts] || !p.done {
			continue
		}
		seen[p.ts] = true
		now := time.Now().UTC()
		p.ts.RestoredAt = &now
		state := StateRestored
		for _, m := range p.ts.Components {
			held, err := quarantineHeld(ctx, r.req.Options, m)
			if err != nil {
				return err
			}
			if held {
				state = StateQuarantined // some components remain in quarantine
			}
		}
		p.ts.State = state
		if err := p.ts.write(); err != nil {
			return err
		}
	}
	// A deletion restored from its archive while its quarantine is still
	// held keeps its state (purge removes the leftovers) and records the
	// restore: the deletion is no longer in effect.
	for _, p := range chosen {
		t := p.archiveTS
		if t == nil || seen[t] || !p.done {
			continue
		}
		seen[t] = true
		now := time.Now().UTC()
		t.RestoredAt = &now
		if err := t.write(); err != nil {
			return err
		}
	}
	return nil
}

// readManifestHead reads only the first entry of an archive, its
// manifest; nothing is verified (archive.Check does).
func readManifestHead(ctx context.Context, st store.Store, key string) (*archive.Manifest, error) {
	f, err := st.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var m *archive.Manifest
	stop := errors.New("stop")
	err = archive.Codec.Extract(ctx, f, func(ctx context.Context, fi archives.FileInfo) error {
		if fi.NameInArchive != "manifest.json" {
			return fmt.Errorf("first entry is %q, not manifest.json", fi.NameInArchive)
		}
		rc, err := fi.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		if m, err = archive.DecodeManifest(rc); err != nil {
			return fmt.Errorf("manifest.json: %w", err)
		}
		return stop
	})
	if err != nil && !errors.Is(err, stop) {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("empty archive")
	}
	return m, nil
}

// asideReason marks the tombstone of components moved aside by force.
const asideReason = "replaced by a forced restore"

// settleAside finishes the tombstones of forced restores that were killed
// between moving a component aside and recording it: moves that happened
// are kept (state quarantined), moves that did not are dropped, so that
// no later deletion mistakes them for an interrupted one.
func settleAside(ctx context.Context, sh shelf, app string, opts instance.Options) (int, error) {
	tombs, err := sh.tombstones(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tombs {
		if t.State != StateQuarantining || t.ArchivePath != "" || t.Reason != asideReason || t.App != app {
			continue
		}
		var kept []QuarantineMove
		for _, m := range t.Components {
			held, err := quarantineHeld(ctx, opts, m)
			if err != nil {
				return n, err
			}
			if held {
				kept = append(kept, m)
				// A run killed between the move and its record: the
				// record is written again (no error when it is there).
				if k, err := kindOf(m.Type); err == nil && t.RetentionRecords {
					if err := keepRetention(ctx, opts.Env(), k, t, m); err != nil {
						return n, fmt.Errorf("record the retention of %s, moved aside by an interrupted forced restore: %w", m.To, err)
					}
				}
			}
		}
		t.Components = kept
		t.State = StateQuarantined
		if len(kept) == 0 {
			t.State = StateRestored
		}
		if err := t.write(); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// wantedNames lists the layout's components that a restore request asks
// for (every one when it names none).
func wantedNames(l *instance.Layout, req RestoreRequest) []string {
	names := []string{}
	for _, c := range l.Components {
		if len(req.Components) == 0 || slices.Contains(req.Components, c.Name) {
			names = append(names, c.Name)
		}
	}
	return names
}

// everyWantedPresent reports whether every component the request asks for
// is present on the host.
func everyWantedPresent(ctx context.Context, l *instance.Layout, req RestoreRequest) (bool, error) {
	inst, err := l.Resolve(ctx, req.Name, req.Options)
	var nf *instance.NotFoundError
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, name := range wantedNames(l, req) {
		if st, _ := inst.State(name); !st.Present {
			return false, nil
		}
	}
	return true, nil
}

// sourceEmpty reports whether what a component comes back from is empty
// too (an empty directory or an empty file): replacing a placeholder with
// it would change nothing but metadata, on every run.
func (r *restorer) sourceEmpty(p *pick) bool {
	if p.ts != nil {
		return emptyPath(p.move.To)
	}
	for _, d := range r.dels {
		if d.archive != p.archive {
			continue
		}
		m, err := d.manifest()
		if err != nil {
			return false
		}
		entries := archive.ComponentEntries(m, p.comp.Name)
		return len(entries) == 1 && (entries[0].Type == "dir" || entries[0].Type == "file" && entries[0].Size == 0)
	}
	return false
}

// emptyPath reports whether path is an empty directory or an empty file.
func emptyPath(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	if fi.Mode().IsRegular() {
		return fi.Size() == 0
	}
	if !fi.IsDir() {
		return false
	}
	d, err := os.Open(path)
	if err != nil {
		return false
	}
	defer d.Close()
	_, err = d.Readdirnames(1)
	return errors.Is(err, io.EOF)
}

// recordPrior ends a restore that places nothing: the relocations an
// earlier, interrupted run placed but did not record (found by
// checkOccupied) are recorded now, once; with nothing to record nothing
// changes.
func (r *restorer) recordPrior(ctx context.Context) (*RestoreResult, error) {
	res := r.res
	var todo []*pick
	for _, p := range r.prior {
		if !r.recorded(p) {
			todo = append(todo, p)
		}
	}
	if len(todo) == 0 {
		if res.Msg == "" && len(res.Notes) == 0 {
			res.Msg = "every requested component is present; nothing to restore"
		}
		return res, nil
	}
	res.Changed = true
	if r.req.CheckMode {
		for _, p := range todo {
			res.note("check mode: the relocation of component %s from %q to %q (archive %s) would be recorded in its deletion's tombstone: an earlier restore placed it but stopped before its record", p.comp.Name, p.mc.Locator, p.locator, p.archive)
		}
		return res, nil
	}
	if err := r.recordRelocations(ctx, todo); err != nil {
		return res, &RestoreFailedError{Name: r.req.Name, Err: err, State: "every component is in place; only the record of the relocation failed: run again"}
	}
	for _, p := range todo {
		res.note("recorded the relocation of component %s from %q to %q, placed by an earlier restore that stopped before its record", p.comp.Name, p.mc.Locator, p.locator)
	}
	return res, nil
}

// recorded reports whether the tombstone of p's archive already records
// p's relocation (same component, from, to).
func (r *restorer) recorded(p *pick) bool {
	for _, t := range r.tombs {
		if t.ArchivePath == "" || t.archiveFile() != baseName(filepath.ToSlash(p.archive)) {
			continue
		}
		for _, rel := range t.Relocated {
			if rel.Component == p.comp.Name && rel.From == p.mc.Locator && rel.To == p.locator {
				return true
			}
		}
	}
	return false
}

// recordRelocations lists, in the result and in the tombstone of each
// archive used, the components restored from an archive to another place
// than its manifest records (relocate), each once.
func (r *restorer) recordRelocations(ctx context.Context, chosen []*pick) error {
	now := time.Now().UTC()
	byArchive := map[string][]Relocation{}
	for _, p := range chosen {
		if !p.done || p.ts != nil || p.mc.Locator == "" || p.mc.Locator == p.locator || r.recorded(p) {
			continue
		}
		rel := Relocation{Component: p.comp.Name, Type: p.comp.Type, From: p.mc.Locator, To: p.locator, Archive: p.archive, At: now}
		if d := r.deletionOf(p.archive); d != nil && d.head != nil {
			rel.Host = d.head.Host
		}
		r.res.Relocated = append(r.res.Relocated, rel)
		byArchive[p.archive] = append(byArchive[p.archive], rel)
	}
	var errs []error
	for _, t := range r.tombs {
		for archive, rels := range byArchive {
			if t.ArchivePath != "" && t.archiveFile() == baseName(filepath.ToSlash(archive)) {
				t.Relocated = append(t.Relocated, rels...)
				if err := t.write(); err != nil {
					errs = append(errs, fmt.Errorf("record the relocation in tombstone %s: %w", t.Path, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// deletionOf returns the deletion whose archive is path.
func (r *restorer) deletionOf(path string) *deletion {
	for _, d := range r.dels {
		if d.archive == path {
			return d
		}
	}
	return nil
}
