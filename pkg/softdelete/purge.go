package softdelete

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// PurgeRequest is one purge run over an archive directory.
type PurgeRequest struct {
	ArchiveDir string
	// Store, when set, is where archives and tombstones are instead of
	// the file store of ArchiveDir.
	Store store.Store
	// Name restricts the purge to one instance.
	Name string
	// KeepLast is how many deletions' archives are kept per instance (at
	// least 1 unless Name is given); spare copies of attempts that moved
	// nothing are not counted (see purgeAppArchives). It can only keep
	// more: an archive whose retention has not passed is kept whatever
	// KeepLast says.
	KeepLast  int
	Now       time.Time
	CheckMode bool
	// PG is how to reach the PostgreSQL server of quarantined databases.
	PG pgdump.Conn
	// Settings holds other kinds' connection settings, keyed by kind type
	// (instance.Options.Settings).
	Settings map[string]any
	// Layouts are the host's layouts (a layout and its Others, or every
	// file of layouts_dir). A quarantine is removed only when its
	// tombstone's app has a layout here and every move it records is
	// where that layout puts the component of the tombstone's instance,
	// into the trash of that deletion (checkMoves); otherwise it is
	// refused, untouched: a tombstone is never trusted to say what to
	// remove.
	Layouts []*instance.Layout
	// App, when set, restricts the purge to the deletions and archives of
	// that app: another app's instance of the same name, filed under the
	// same archive_dir/<name>/, is left alone. keep_last and retention
	// always count per (app, instance).
	App string
	// AfterStep, when set, is called after each step ("journal",
	// "rename", "remove:<component>", "purged", "archive"); tests use it
	// to break the run at step boundaries.
	AfterStep func(step string)
}

// env is the environment the component kinds receive.
func (r *PurgeRequest) env() kind.Env {
	return instance.Options{PG: r.PG, Settings: r.Settings}.Env()
}

func (r *PurgeRequest) step(name string) {
	if r.AfterStep != nil {
		r.AfterStep(name)
	}
}

// Purged is one thing removed for good (or, in check mode, that would be).
type Purged struct {
	Instance string `json:"instance"`
	App      string `json:"app,omitempty"`
	Kind     string `json:"kind"` // quarantine, database, archive
	Path     string `json:"path"`
	Reason   string `json:"reason"`
}

// Kept is one thing purge left in place on purpose: its retention has not
// passed (Until says when it will; for a spare copy, its own attempt's),
// it is the archive of one of the newest KeepLast deletions, or it is the
// archive of a quarantine that is still there.
type Kept struct {
	Instance string     `json:"instance"`
	App      string     `json:"app,omitempty"`
	Kind     string     `json:"kind"`
	Path     string     `json:"path"`
	Reason   string     `json:"reason"`
	Until    *time.Time `json:"until,omitempty"`
}

// Refused is one thing that was due but was not (or not fully) removed:
// Left says what remains, Hint how to finish.
type Refused struct {
	Instance string `json:"instance"`
	App      string `json:"app,omitempty"`
	Kind     string `json:"kind"`
	Path     string `json:"path"`
	Reason   string `json:"reason"`
	Left     string `json:"left"`
	Hint     string `json:"hint"`
}

// PurgeResult is the outcome of a purge run. Changed is true as soon as
// anything was renamed or removed, even when the run then failed.
type PurgeResult struct {
	Changed bool      `json:"changed"`
	Purged  []Purged  `json:"purged"`
	Kept    []Kept    `json:"kept"`
	Refused []Refused `json:"refused"`
	// AlreadyGone lists quarantined items that were due but no longer
	// there (a restore brought them back, or someone removed them): this
	// run removed nothing of them, so they are not listed as purged.
	AlreadyGone []Purged `json:"already_gone"`
	// Orphans lists the RESTORE.md and sidecar objects found describing
	// an archive the store does not hold, and what was done with them.
	Orphans []Orphan `json:"orphans"`
}

// PurgeIncompleteError is a purge run that left due items in place.
type PurgeIncompleteError struct {
	Refused []Refused
	Changed bool
}

func (e *PurgeIncompleteError) Error() string {
	parts := make([]string, 0, len(e.Refused))
	for _, r := range e.Refused {
		parts = append(parts, fmt.Sprintf("%s %s %s: %s (left: %s)", r.Instance, r.Kind, r.Path, r.Reason, r.Left))
	}
	return fmt.Sprintf("purge could not remove %d due item(s): %s", len(e.Refused), strings.Join(parts, "; "))
}

// Hint tells the operator what to do.
func (e *PurgeIncompleteError) Hint() string {
	var hints []string
	for _, r := range e.Refused {
		if r.Hint != "" && !containsString(hints, r.Hint) {
			hints = append(hints, r.Hint)
		}
	}
	done := "this run removed nothing"
	if e.Changed {
		done = "this run removed only the items listed under purged"
	}
	return strings.Join(append(hints, done), "; ")
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Purge removes, for good, quarantined components and databases whose
// purge_after has passed, deletions' archives beyond the newest KeepLast
// deletions per instance whose retention has passed, and spare copies of
// attempts that moved nothing whose own retention has passed. See PurgeReport.
func Purge(ctx context.Context, req PurgeRequest) ([]Purged, error) {
	res, err := PurgeReport(ctx, req)
	if res == nil {
		return nil, err
	}
	return res.Purged, err
}

// PurgeReport is Purge with everything it kept and refused. It is the
// only code that deletes data permanently. Every quarantine is opened
// without following a link at any level and checked whole (one mount,
// nothing immutable) before anything of it is removed; the tombstone
// says purging, and the quarantine is renamed to a purging name, before
// the first removal; a later run finishes a purge that was interrupted.
func PurgeReport(ctx context.Context, req PurgeRequest) (*PurgeResult, error) {
	st, err := openStore(ctx, req.Store, req.ArchiveDir)
	if err != nil {
		return nil, err
	}
	if req.Now.IsZero() {
		req.Now = time.Now().UTC()
	}
	if req.KeepLast < 0 || (req.KeepLast < 1 && req.Name == "") {
		return nil, &RefusedError{Action: "purge", Name: "every instance", Reason: fmt.Sprintf("keep_last %d would remove the last archive of every instance", req.KeepLast),
			Advice: "keep_last below 1 is only accepted together with an explicit name"}
	}
	res := &PurgeResult{Purged: []Purged{}, Kept: []Kept{}, Refused: []Refused{}, AlreadyGone: []Purged{}, Orphans: []Orphan{}}
	if req.Name != "" {
		if err := instance.ValidateName(req.Name, nil); err != nil {
			return nil, err
		}
		if err := store.CheckKey(req.Name); err != nil {
			return nil, err
		}
	}
	all, err := folders(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", st.Location(""), err)
	}
	for _, f := range all {
		if req.Name != "" && f.Name != req.Name {
			continue
		}
		if f.NotDir != "" {
			if req.Name == "" {
				continue // only the instance named is looked for through its entry
			}
			// A link here would purge another instance's archives under
			// this one's name.
			dir := st.Location(f.Name)
			res.Refused = append(res.Refused, Refused{Instance: f.Name, Kind: "archive", Path: dir,
				Reason: fmt.Sprintf("%s is not a directory (%s); purge never reaches archives through a link", dir, f.NotDir),
				Left:   "every archive and tombstone of " + f.Name + ", untouched", Hint: "replace it by the real directory, then run the purge again"})
			continue
		}
		if err := purgeInstance(ctx, &req, shelf{st: st, name: f.Name}, res); err != nil {
			return res, err
		}
	}
	if len(res.Refused) > 0 {
		return res, &PurgeIncompleteError{Refused: res.Refused, Changed: res.Changed}
	}
	return res, nil
}

func purgeInstance(ctx context.Context, req *PurgeRequest, sh shelf, res *PurgeResult) error {
	name := sh.name
	if !req.CheckMode {
		unlock, err := sh.lock(ctx)
		if err != nil {
			return refusedAs(err, "purge")
		}
		defer unlock()
	}
	orphans, err := sweepOrphans(ctx, sh, req.CheckMode)
	if err != nil {
		return fmt.Errorf("look for RESTORE.md and sidecars without their archive under %s: %w", sh.where(), err)
	}
	res.Orphans = append(res.Orphans, orphans...)
	res.Changed = res.Changed || orphansChanged(orphans)
	tss, err := sh.tombstones(ctx)
	if err != nil {
		return err
	}
	if !req.CheckMode {
		// The host-wide locks of every app's instance of this name that
		// this run may touch: a run with another archive_dir holds them.
		apps := map[string]bool{}
		for _, ts := range tss {
			if ts.Instance == name && (req.App == "" || ts.App == req.App) {
				apps[ts.App] = true
			}
		}
		for _, app := range sortedKeys(apps) {
			l := req.layoutOf(app)
			if l == nil {
				continue // its quarantines are refused below
			}
			unlockHost, err := lockInstance(l, name)
			if err != nil {
				return err
			}
			defer unlockHost()
		}
	}
	for _, ts := range tss {
		if ts.Instance != name {
			res.Refused = append(res.Refused, Refused{Instance: name, App: ts.App, Kind: "quarantine", Path: ts.Path,
				Reason: fmt.Sprintf("tombstone of instance %q found under %s", ts.Instance, sh.where()),
				Left:   "the tombstone and whatever it names, untouched", Hint: "move the tombstone back to the directory of its instance, then run the purge again"})
			continue
		}
		if req.App != "" && ts.App != req.App {
			continue // another app's instance of this name
		}
		switch ts.State {
		case StatePurging:
			// A purge was interrupted: finish it, retention was checked
			// when it started.
		case StateQuarantined:
			if req.Now.Before(ts.PurgeAfter) {
				until := ts.PurgeAfter
				for _, m := range ts.Components {
					res.Kept = append(res.Kept, Kept{Instance: name, App: ts.App, Kind: moveKind(m), Path: m.To, Until: &until,
						Reason: fmt.Sprintf("retention: deleted %s, purge_after %s not reached", ts.DeletedAt.Format(time.RFC3339), ts.PurgeAfter.Format(time.RFC3339)) + ts.overruledNote()})
				}
				continue
			}
		case StateQuarantining:
			res.Kept = append(res.Kept, Kept{Instance: name, App: ts.App, Kind: "quarantine", Path: ts.Path,
				Reason: "the deletion was interrupted before its quarantine was complete; run instance_soft_delete again to finish it"})
			continue
		default:
			continue
		}
		if err := req.checkMoves(ts); err != nil {
			res.Refused = append(res.Refused, Refused{Instance: name, App: ts.App, Kind: "quarantine", Path: ts.Path,
				Reason: err.Error(),
				Left:   "the whole quarantine of deletion " + ts.ID + ", untouched (tombstone state " + ts.State + ")",
				Hint: "purge removes only what this host's layout of the app says is the instance's: give the app's layout (layout_file, or layouts_dir holding it); " +
					"a tombstone that does not match it was edited, copied from another instance, or the layout changed since the deletion: check it by hand"})
			continue
		}
		if err := purgeTombstone(ctx, req, name, ts, res); err != nil {
			return err
		}
	}
	return purgeArchives(ctx, req, sh, tss, res)
}

// layoutOf returns the host's layout of app, nil when there is none.
func (r *PurgeRequest) layoutOf(app string) *instance.Layout {
	for _, l := range r.Layouts {
		if l.App == app {
			return l
		}
	}
	return nil
}

// checkMoves refuses a tombstone whose quarantine is not, by this host's
// layout of its app, the instance's: every move must be of a component of
// that layout, of its type, from the place the layout gives the
// tombstone's instance, into that deletion's trash (or quarantine
// database name). An edited or copied tombstone naming another instance's
// quarantine is refused before anything is removed.
func (r *PurgeRequest) checkMoves(ts *Tombstone) error {
	l := r.layoutOf(ts.App)
	if l == nil {
		apps := []string{}
		for _, o := range r.Layouts {
			apps = append(apps, o.App)
		}
		known := "none"
		if len(apps) > 0 {
			known = strings.Join(apps, ", ")
		}
		return fmt.Errorf("deletion %s is of app %q, which has no layout on this host (layouts known: %s): purge removes a quarantine only where the app's layout puts the instance", ts.ID, ts.App, known)
	}
	for _, m := range ts.Components {
		c, ok := l.Component(m.Component)
		if !ok {
			return fmt.Errorf("tombstone %s moved component %s, which the layout of app %s (%s) does not have", ts.Path, m.Component, l.App, l.Source)
		}
		if c.Type != m.Type {
			return fmt.Errorf("tombstone %s records component %s as %s; the layout of app %s (%s) says %s", ts.Path, m.Component, m.Type, l.App, l.Source, c.Type)
		}
		want := c.Template.Expand(ts.Instance)
		k, err := kindOf(c.Type)
		if err != nil {
			return fmt.Errorf("tombstone %s component %s: %w", ts.Path, m.Component, err)
		}
		if from := k.MoveLocator(m.move()); from != want {
			return fmt.Errorf("tombstone %s says component %s of %s was %s; the layout of app %s (%s) puts it at %s: that quarantine is not %s's",
				ts.Path, m.Component, ts.Instance, m.From, l.App, l.Source, want, ts.Instance)
		}
		if q := quarantineTarget(m.Type, m.From, ts.ID); m.To != q {
			return fmt.Errorf("tombstone %s says component %s went to %s; the quarantine of %s by deletion %s is %s", ts.Path, m.Component, m.To, m.From, ts.ID, q)
		}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// moveKind is what a quarantine move is called in purge results
// (Kind.PurgeLabel: quarantine, database).
func moveKind(m QuarantineMove) string {
	if k, ok := kind.Lookup(m.Type); ok {
		return k.PurgeLabel()
	}
	return "quarantine"
}

// ownPurge reports whether a move's kind purges its quarantine itself
// (a database) rather than with the trash entry of its parent.
func ownPurge(m QuarantineMove) bool {
	k, ok := kind.Lookup(m.Type)
	return ok && k.TrashNames(m.move()) == nil
}

// purgeTombstone removes the quarantine of one deletion, all or nothing
// up to the first removal: every part is checked first.
func purgeTombstone(ctx context.Context, req *PurgeRequest, name string, ts *Tombstone, res *PurgeResult) error {
	why := fmt.Sprintf("deleted %s, purge_after %s passed", ts.DeletedAt.Format(time.RFC3339), ts.PurgeAfter.Format(time.RFC3339))
	if ts.State == StatePurging {
		why = "finishing an interrupted purge (" + why + ")"
	}
	entries := map[string]*trashEntry{}
	defer func() {
		for _, e := range entries {
			e.close()
		}
	}()
	entryOf := map[string]*trashEntry{} // component -> its trash
	goneAtStart := map[*trashEntry]bool{}
	compGone := map[string]bool{} // component -> no longer in its intact trash entry
	var dbs []QuarantineMove
	var refused []Refused
	refuse := func(m QuarantineMove, err error) {
		r := Refused{Instance: name, App: ts.App, Kind: moveKind(m), Path: m.To, Reason: err.Error(), Hint: "fix the cause, then run the purge again"}
		var h interface{ Hint() string }
		if errors.As(err, &h) {
			r.Hint = h.Hint()
		}
		if ts.State == StatePurging {
			r.Left = "the quarantine of deletion " + ts.ID + " is partly removed (tombstone state purging); restore uses the archive"
		} else {
			r.Left = "the whole quarantine of deletion " + ts.ID + ", untouched (tombstone state " + ts.State + ")"
		}
		refused = append(refused, r)
	}
	for _, m := range ts.Components {
		if _, err := kindOf(m.Type); err != nil {
			refuse(m, err)
			continue
		}
		if ownPurge(m) {
			dbs = append(dbs, m)
			continue
		}
		parent, err := trashParent(m.To, ts.ID)
		if err != nil {
			refuse(m, err)
			continue
		}
		e, ok := entries[parent]
		if !ok {
			e, err = openTrash(parent, ts.ID)
			if err != nil {
				refuse(m, err)
				continue
			}
			entries[parent] = e
			goneAtStart[e] = e.gone()
		}
		entryOf[m.Component] = e
		if e.intact {
			// The trash entry is there, but a restore may have moved this
			// component back out of it.
			if _, err := os.Lstat(m.To); errors.Is(err, fs.ErrNotExist) {
				compGone[m.Component] = true
			}
		}
	}
	// A trash entry goes whole: it must hold nothing this tombstone does
	// not name (another deletion's quarantine under the same id, by a
	// forged tombstone or by hand, in a parent shared by instances).
	if len(refused) == 0 {
		named := map[string]map[string]bool{}
		for _, m := range ts.Components {
			if ownPurge(m) {
				continue
			}
			p, _ := trashParent(m.To, ts.ID)
			if named[p] == nil {
				named[p] = map[string]bool{}
			}
			k, _ := kindOf(m.Type)
			for _, n := range k.TrashNames(m.move()) {
				named[p][n] = true
			}
		}
		for _, m := range ts.Components {
			if ownPurge(m) {
				continue
			}
			p, _ := trashParent(m.To, ts.ID)
			named[p][kind.RetentionFile] = true // the deletion's own record
			extra, err := entries[p].unnamed(named[p])
			if err == nil && len(extra) > 0 {
				err = fmt.Errorf("the quarantine of deletion %s in %s also holds %s, which its tombstone does not name (another deletion's, or put there by hand); purge removes a quarantine only whole",
					ts.ID, entries[p].trash(), strings.Join(extra, ", "))
			}
			if err != nil {
				refuse(m, err)
			}
		}
	}
	env := req.env()
	if len(dbs) > 0 && len(refused) == 0 {
		for _, m := range dbs {
			k, _ := kindOf(m.Type)
			gone, err := k.PurgeCheck(ctx, env, m.move())
			switch {
			case err != nil:
				refuse(m, err)
			case gone:
				compGone[m.Component] = true // a restore brought it back, or it was dropped
			}
		}
	}
	// The quarantine's own record of its retention must agree with the
	// tombstone (FINDINGS-4 #4): an edited tombstone alone purges nothing.
	if len(refused) == 0 {
		own, conflict := checkOwnRetention(ctx, env, req.Now, ts, entryOf, compGone)
		if conflict == nil && len(own.missing) > 0 {
			// A record removed is no agreement (FINDINGS-6 #2): only a
			// deletion by a release before records purges on the
			// tombstone alone.
			promised, said, err := recordsPromised(ctx, ts)
			switch {
			case err != nil:
				conflict = &RetentionUnknownError{Deletion: ts.ID, TombstonePath: ts.Path, Missing: own.missing, Err: err}
			case promised:
				conflict = &RetentionRecordMissingError{Deletion: ts.ID, TombstonePath: ts.Path, Said: said, Missing: own.missing}
			default:
				why += "; " + strings.Join(own.missing, ", ") + " keep(s) no retention record of their own (quarantined by a release before records were kept, as its tombstone and archive say): retention taken from the tombstone alone"
			}
		}
		if conflict == nil && len(own.bare) > 0 {
			conflict = confirmBare(ctx, req.Now, ts, own.bare)
		}
		if conflict != nil {
			for _, m := range ts.Components {
				refuse(m, conflict)
			}
		} else if len(own.finishing) > 0 {
			why += "; " + strings.Join(own.finishing, ", ") + " keep(s) no retention record any more: the interrupted purge, which had checked it, marked it as being purged or began removing it"
		}
	}
	if len(refused) > 0 {
		res.Refused = append(res.Refused, refused...)
		return nil
	}
	if req.CheckMode {
		for _, m := range ts.Components {
			if e := entryOf[m.Component]; compGone[m.Component] || (e != nil && goneAtStart[e]) {
				res.AlreadyGone = append(res.AlreadyGone, Purged{Instance: name, App: ts.App, Kind: moveKind(m), Path: m.To,
					Reason: why + "; it is already gone (restored, or removed by other means): nothing to remove"})
				continue
			}
			res.Purged = append(res.Purged, Purged{Instance: name, App: ts.App, Kind: moveKind(m), Path: m.To, Reason: why})
		}
		ts.State = StatePurged // in memory only: its archive may go too
		return nil
	}

	// Journal first: from here on the quarantine is never an intact copy.
	if ts.State != StatePurging {
		ts.State = StatePurging
		if err := ts.write(); err != nil {
			return fmt.Errorf("purge %s: record state purging in %s: %w; nothing was removed", name, ts.Path, err)
		}
		res.Changed = true
		req.step("journal")
	}
	res.Changed = true
	parents := make([]string, 0, len(entries))
	for p := range entries {
		parents = append(parents, p)
	}
	sort.Strings(parents)
	for _, p := range parents {
		if err := entries[p].markPurging(); err != nil {
			return fmt.Errorf("purge %s: %w; the tombstone says purging, run the purge again to finish", name, err)
		}
	}
	for _, m := range dbs {
		k, _ := kindOf(m.Type)
		if err := k.PurgeMark(ctx, env, m.move()); err != nil {
			return fmt.Errorf("purge %s: %w; the tombstone says purging, run the purge again to finish", name, err)
		}
	}
	req.step("rename")

	failed := map[*trashEntry]error{}
	for _, p := range parents {
		if err := entries[p].remove(); err != nil {
			failed[entries[p]] = err
		}
	}
	complete := true
	for _, m := range ts.Components {
		var err error
		k, _ := kindOf(m.Type)
		if ownPurge(m) {
			err = k.PurgeRemove(ctx, env, m.move())
		} else {
			err = failed[entryOf[m.Component]]
		}
		if err != nil {
			complete = false
			refuse(m, err)
			r := &refused[len(refused)-1]
			if ownPurge(m) {
				r.Left = k.PurgeLeft(m.move()) + " (tombstone state purging; restore uses the archive)"
			} else {
				r.Left = leftIn(entryOf[m.Component].purgingPath()) + " (tombstone state purging; restore uses the archive)"
			}
			r.Hint += "; then run instance_purge again: it finishes a purge left in state purging"
			continue
		}
		if e := entryOf[m.Component]; compGone[m.Component] || (e != nil && goneAtStart[e]) {
			res.AlreadyGone = append(res.AlreadyGone, Purged{Instance: name, App: ts.App, Kind: moveKind(m), Path: m.To,
				Reason: why + "; it was already gone (restored, or removed by other means): nothing to remove"})
		} else {
			res.Purged = append(res.Purged, Purged{Instance: name, App: ts.App, Kind: moveKind(m), Path: m.To, Reason: why})
		}
		req.step("remove:" + m.Component)
	}
	res.Refused = append(res.Refused, refused...)
	if !complete {
		return nil
	}
	ts.State = StatePurged
	if err := ts.write(); err != nil {
		return fmt.Errorf("purge %s: every part of deletion %s is removed but %s could not record it: %w; run the purge again", name, ts.ID, ts.Path, err)
	}
	req.step("purged")
	return nil
}

// purgeArchives removes archives beyond the newest KeepLast whose
// retention has passed and whose quarantine is gone.
func purgeArchives(ctx context.Context, req *PurgeRequest, sh shelf, tss []*Tombstone, res *PurgeResult) error {
	name := sh.name
	files, err := sh.archives(ctx) // names start with a UTC timestamp: oldest first
	if err != nil {
		return err
	}
	archives := make([]string, len(files))
	for i, f := range files {
		archives[i] = sh.loc(f)
	}
	owner := map[string]*Tombstone{}
	for _, ts := range tss {
		if ts.ArchivePath != "" && ts.Instance == name {
			owner[filepath.Base(ts.ArchivePath)] = ts
		}
	}
	// An archive is named after its deletion's id: a tombstone whose
	// archive_path was blanked by hand still owns it, so that it does not
	// pass for a spare copy without a tombstone (removed at once).
	for _, ts := range tss {
		if ts.Instance == name && ts.ID != "" && owner[ts.ID+archiveExt] == nil {
			owner[ts.ID+archiveExt] = ts
		}
	}
	// Archives are filed by instance name: two apps' instances of one
	// name share archive_dir/<name>/. keep_last counts per (app,
	// instance): each archive belongs to the app of its tombstone, or of
	// its manifest when it has none ("" when neither tells).
	byApp := map[string][]string{}
	for _, a := range archives {
		app := ""
		if ts := owner[filepath.Base(a)]; ts != nil && ts.App != "" {
			app = ts.App
		} else if m, err := readManifestHead(ctx, sh.st, sh.key(filepath.Base(a))); err == nil && m.Instance == name {
			app = m.App
		}
		if req.App != "" && app != req.App {
			continue
		}
		byApp[app] = append(byApp[app], a)
	}
	apps := make([]string, 0, len(byApp))
	for app := range byApp {
		apps = append(apps, app)
	}
	sort.Strings(apps)
	for _, app := range apps {
		purgeAppArchives(ctx, req, sh, app, byApp[app], owner, res)
	}
	return nil
}

// isDeletionArchive reports whether the archive owned by ts (nil: no
// tombstone) is the archive of a deletion, the only kind keep_last
// counts. The archive of an attempt that moved nothing (abandoned, or
// still archiving: killed before its tombstone said quarantining) or of
// an archive found without a tombstone is a spare copy: restore never
// takes it by itself, so it never takes the place of a deletion's.
func isDeletionArchive(ts *Tombstone) bool {
	if ts == nil {
		return false
	}
	switch ts.State {
	case StateArchiving, StateAbandoned:
		return false
	}
	return true
}

// purgeAppArchives applies keep_last and retention to the archives of one
// (app, instance), oldest first. keep_last counts the archives of
// deletions only; a spare copy (see isDeletionArchive) is never counted
// and never kept by it: it goes once its own attempt's purge_after has
// passed (at once when none was recorded: nothing was ever moved).
func purgeAppArchives(ctx context.Context, req *PurgeRequest, sh shelf, app string, archives []string, owner map[string]*Tombstone, res *PurgeResult) {
	name := sh.name
	of := ""
	if app != "" {
		of = " of app " + app + "'s " + name
	}
	deletions := 0
	for _, a := range archives {
		if isDeletionArchive(owner[filepath.Base(a)]) {
			deletions++
		}
	}
	seen := 0 // deletions' archives before this one
	for _, a := range archives {
		ts := owner[filepath.Base(a)]
		deletion := isDeletionArchive(ts)
		if deletion {
			seen++
		}
		switch {
		case deletion && seen > deletions-req.KeepLast:
			res.Kept = append(res.Kept, withStoreLock(ctx, sh, a, req.Now, Kept{Instance: name, App: app, Kind: "archive", Path: a,
				Reason: fmt.Sprintf("the archive of one of the newest %d deletion(s)%s (keep_last)", req.KeepLast, of)}))
			continue
		case ts != nil && req.Now.Before(ts.PurgeAfter):
			until := ts.PurgeAfter
			what := "deleted"
			if !deletion {
				what = "spare copy of an attempt (state " + ts.State + ") that moved nothing, started"
			}
			res.Kept = append(res.Kept, withStoreLock(ctx, sh, a, req.Now, Kept{Instance: name, App: app, Kind: "archive", Path: a, Until: &until,
				Reason: fmt.Sprintf("retention: %s %s, purge_after %s not reached; keep_last never shortens retention", what, ts.DeletedAt.Format(time.RFC3339), ts.PurgeAfter.Format(time.RFC3339)) + ts.overruledNote()}))
			continue
		case ts != nil && (ts.State == StateQuarantined || ts.State == StateQuarantining || ts.State == StatePurging || ts.State == StateRollingBack):
			res.Kept = append(res.Kept, withStoreLock(ctx, sh, a, req.Now, Kept{Instance: name, App: app, Kind: "archive", Path: a,
				Reason: fmt.Sprintf("its quarantine (deletion %s, state %s) is not purged yet; the archive goes after it", ts.ID, ts.State)}))
			continue
		}
		var why string
		switch {
		case deletion:
			why = fmt.Sprintf("older than the archives of the newest %d deletion(s)%s, purge_after %s passed", req.KeepLast, of, ts.PurgeAfter.Format(time.RFC3339))
		case ts != nil && !ts.PurgeAfter.IsZero():
			why = fmt.Sprintf("spare copy of attempt %s (state %s), which moved nothing; not counted by keep_last; its purge_after %s passed", ts.ID, ts.State, ts.PurgeAfter.Format(time.RFC3339))
		case ts != nil:
			why = fmt.Sprintf("spare copy recorded as attempt %s (state %s), which moved nothing and recorded no retention; not counted by keep_last", ts.ID, ts.State)
		default:
			why = "spare copy without a tombstone: no deletion moved anything for it and no retention was recorded; not counted by keep_last"
		}
		// The store's own lock (S3 Object Lock) is never tried: an
		// archive it keeps stays, and says until when.
		file := filepath.Base(a)
		if lk, locked := storeLock(ctx, sh.st, sh.key(file), req.Now); locked {
			kept := Kept{Instance: name, App: app, Kind: "archive", Path: a, Reason: "locked by the store (Object Lock): " + lk.String()}
			if !lk.LegalHold {
				kept.Until = &lk.Until
			}
			res.Kept = append(res.Kept, kept)
			continue
		}
		// The archive's own verified manifest must say its retention is
		// over too: a tombstone alone never removes it (purge_confirm.go).
		conf, uerr := confirmArchiveRetention(ctx, sh, file, ts)
		if uerr != nil {
			res.Kept = append(res.Kept, Kept{Instance: name, App: app, Kind: "archive", Path: a, Reason: uerr.Error() + "; " + uerr.Hint()})
			continue
		}
		if req.Now.Before(conf.until) {
			until := conf.until
			res.Kept = append(res.Kept, Kept{Instance: name, App: app, Kind: "archive", Path: a, Until: &until,
				Reason: "retention by the archive's own manifest: " + conf.said + ", not reached; keep_last never shortens retention" + conf.keptNote(ts)})
			continue
		}
		why += conf.purgedNote()
		if req.CheckMode {
			res.Purged = append(res.Purged, Purged{Instance: name, App: app, Kind: "archive", Path: a, Reason: why})
			continue
		}
		var rerr error
		for _, k := range []string{sh.key(file + sidecar.Suffix), sh.key(file + archive.RunbookSuffix), sh.key(file)} {
			err := sh.st.Remove(ctx, k)
			if err == nil {
				res.Changed = true
			}
			if err != nil && !errors.Is(err, store.ErrNotExist) {
				rerr = err
				break
			}
		}
		if rerr != nil {
			left := a
			if _, err := sh.st.Stat(ctx, sh.key(file+sidecar.Suffix)); !errors.Is(err, store.ErrNotExist) {
				left += " and its .sha256 sidecar"
			}
			res.Refused = append(res.Refused, Refused{Instance: name, App: app, Kind: "archive", Path: a, Reason: rerr.Error(),
				Left: left, Hint: "fix the cause, then run the purge again"})
			continue
		}
		res.Purged = append(res.Purged, Purged{Instance: name, App: app, Kind: "archive", Path: a, Reason: why})
		req.step("archive")
	}
}

// unnamed lists what the trash entry of the deletion (intact or being
// purged) holds besides the names given, read without following links.
func (e *trashEntry) unnamed(names map[string]bool) ([]string, error) {
	var out []string
	for _, name := range []string{e.id, e.id + PurgingSuffix} {
		if name == e.id && !e.intact || name != e.id && !e.purging {
			continue
		}
		full := filepath.Join(e.trash(), name)
		fd, err := openDirAt(e.fd, name, full)
		if err != nil {
			return nil, err
		}
		ns, err := readNames(fd, full)
		closeFd(fd)
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			if !names[n] {
				out = append(out, filepath.Join(full, n))
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// withStoreLock adds to the reason of an archive kept for fleetsafe's own
// reasons (keep_last, retention, a quarantine not purged yet) the lock
// the store itself keeps on it (S3 Object Lock), when it does: the report
// says which objects stay locked, and until when, before retention ends
// too.
func withStoreLock(ctx context.Context, sh shelf, archive string, now time.Time, k Kept) Kept {
	if lk, locked := storeLock(ctx, sh.st, sh.key(filepath.Base(archive)), now); locked {
		k.Reason += "; also locked by the store (Object Lock): " + lk.String()
	}
	return k
}
