package softdelete

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Request is one soft deletion.
type Request struct {
	Name       string
	ArchiveDir string
	// Store, when set, is where archives and tombstones go instead of
	// the file store of ArchiveDir.
	Store       store.Store
	Reason      string
	RequestedBy string
	JobID       string
	// Launch, when set, is recorded in the tombstone: who and what
	// launched the job.
	Launch *Launch
	// Fingerprint, when set, must match the instance as found now.
	Fingerprint string
	// RetentionDays is how long the quarantined copy is kept before purge
	// may remove it; 0 means purge may remove it at once. Negative values
	// are refused.
	RetentionDays int
	// ObjectLock, "governance" or "compliance", has the store keep the
	// archive and its sidecar until purge_after (S3 Object Lock; the
	// store must be a store.Retainer with it enabled). LegalHold keeps
	// them until the hold is lifted.
	ObjectLock string
	LegalHold  bool
	// StopService stops an active systemd unit of the instance instead of
	// refusing.
	StopService bool
	// AcceptLosses lists the kinds of loss the operator accepts (values of
	// AcceptableLosses); the archive then goes without them and the
	// manifest and result name each. Without it, such entries refuse the
	// deletion.
	AcceptLosses []string
	CheckMode    bool
	Options      instance.Options
	// AfterStep, when set, is called after each step ("lock", "journal",
	// "dump", "hash", "archive", "verify", "tombstone",
	// "quarantine:<component>", "quarantined"); tests use it to crash the
	// process at step boundaries.
	AfterStep func(step string)
	// Progress, when set, is called with the progress of archiving and of
	// reading the archive back (phases archive and verify), at most every
	// ProgressInterval. Nil: nothing is reported.
	Progress func(archive.Progress)
}

// Result is the outcome of a soft deletion. It is returned with an error
// too when something was moved before the failure (Changed true).
type Result struct {
	Changed     bool             `json:"changed"`
	Msg         string           `json:"msg,omitempty"`
	Archive     *archive.Info    `json:"archive,omitempty"`
	Tombstone   *TombstoneInfo   `json:"tombstone,omitempty"`
	Quarantined []QuarantineMove `json:"quarantined"`
	// ArchiveLock is what the store keeps the archive locked by
	// (ObjectLock, LegalHold), as the store reports it.
	ArchiveLock *store.Retention `json:"archive_lock,omitempty"`
	// Losses lists what the archive does not carry because the operator
	// accepted it (AcceptLosses): skipped special files, dropped ACLs,
	// attributes, capabilities or flags. It is bounded: the first
	// archive.ListedPerKind of each kind in each component, in path
	// order; LossCounts counts every one, LossesTotal is their sum, and
	// the archive's manifest lists every one.
	Losses      []archive.Finding      `json:"losses,omitempty"`
	LossCounts  []archive.FindingCount `json:"loss_counts,omitempty"`
	LossesTotal int                    `json:"losses_total,omitempty"`
	// Warnings are things the operator must know that did not fail the
	// task (an earlier deletion found interrupted, archives without a
	// tombstone).
	Warnings []string `json:"-"`
	// Orphans lists the RESTORE.md and sidecar objects found describing
	// an archive the store does not hold, and what was done with them.
	Orphans []Orphan `json:"orphans"`
	// Plan is what check mode would do.
	Plan *Plan `json:"plan,omitempty"`
}

// TombstoneInfo is the tombstone part of a result.
type TombstoneInfo struct {
	ID         string    `json:"id"`
	Path       string    `json:"path"`
	State      string    `json:"state"`
	DeletedAt  time.Time `json:"deleted_at"`
	PurgeAfter time.Time `json:"purge_after"`
}

// Plan lists what a deletion would archive and move.
type Plan struct {
	Components []string `json:"components"`
	Files      int      `json:"files"`
	Bytes      int64    `json:"bytes"`
	Databases  []string `json:"databases"`
}

// RefusedError is a deletion (or a purge) refused before anything
// changed.
type RefusedError struct {
	// Action is what was refused, as a verb: "delete" when empty,
	// "purge", "restore".
	Action string
	Name   string
	Reason string
	Advice string
}

func (e *RefusedError) Error() string {
	action := e.Action
	if action == "" {
		action = "delete"
	}
	return fmt.Sprintf("refusing to %s %s: %s", action, e.Name, e.Reason)
}

// refusedAs names the action a refusal refused (the lock, shared by
// delete, purge and restore, refuses as a deletion).
func refusedAs(err error, action string) error {
	var re *RefusedError
	if errors.As(err, &re) {
		re.Action = action
	}
	return err
}

// Hint tells the operator what to do.
func (e *RefusedError) Hint() string {
	if e.Advice != "" {
		return e.Advice + "; nothing was changed"
	}
	return "nothing was changed"
}

// IncompleteError is a deletion that stopped after moving something: the
// tombstone (the journal) says where it stands and a re-run finishes it.
type IncompleteError struct {
	Name      string
	Tombstone string
	State     string
	Moved     []string // components in quarantine
	InPlace   []string // components not moved yet
	Err       error
}

func (e *IncompleteError) Error() string {
	moved := "none"
	if len(e.Moved) > 0 {
		moved = strings.Join(e.Moved, ", ")
	}
	inPlace := "none"
	if len(e.InPlace) > 0 {
		inPlace = strings.Join(e.InPlace, ", ")
	}
	return fmt.Sprintf("deletion of %s stopped half way: %v; state left: %s (tombstone %s); in quarantine: %s; still in place: %s",
		e.Name, e.Err, e.State, e.Tombstone, moved, inPlace)
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *IncompleteError) Hint() string {
	return "fix the cause (free space, permissions) and run the same task again: it finishes the deletion from the tombstone; the verified archive is kept; instance_restore brings the instance back instead"
}

// LateChangeError is an entry that changed after it was archived: the
// archive no longer matches what would be quarantined.
type LateChangeError struct {
	Name    string
	Changes []string
	// MovedBack is true when the change was found inside quarantine and
	// the components were moved back to their place.
	MovedBack bool
}

func (e *LateChangeError) Error() string {
	where := "before quarantine"
	if e.MovedBack {
		where = "while it was moved into quarantine (every component was moved back)"
	}
	return fmt.Sprintf("refusing to delete %s: %d entr%s changed after the archive was made, %s: %s",
		e.Name, len(e.Changes), kind.Plural(len(e.Changes), "y", "ies"), where, strings.Join(e.Changes, "; "))
}

// Hint tells the operator what to do.
func (e *LateChangeError) Hint() string {
	return "something still writes to the instance: stop it (stop_service: true) and run again; the archive that missed the change was removed and every component is in place"
}

// newID names a deletion (its archive, tombstone and trash directory): a
// UTC timestamp to the microsecond, so that names sort in the order of the
// deletions even within one second (purge's keep_last and restore's
// "newest" rely on it), then a random part.
func newID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405.000000Z") + "-" + hex.EncodeToString(b)
}

func (r *Request) step(name string) {
	if r.AfterStep != nil {
		r.AfterStep(name)
	}
}

// checkRequest refuses a request that cannot be right, before anything.
func checkRequest(l *instance.Layout, req Request) error {
	if err := l.ValidateName(req.Name); err != nil {
		return err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return &RefusedError{Name: req.Name, Reason: "no reason given", Advice: "say why in reason"}
	}
	if req.Store == nil && !filepath.IsAbs(req.ArchiveDir) {
		return &RefusedError{Name: req.Name, Reason: fmt.Sprintf("archive_dir %q is not an absolute path", req.ArchiveDir)}
	}
	if req.RetentionDays < 0 {
		return &RefusedError{Name: req.Name, Reason: fmt.Sprintf("retention_days is %d: it must be 0 (purge may remove the quarantined copy at once) or more", req.RetentionDays),
			Advice: "give the number of days to keep the quarantined copy"}
	}
	for _, a := range req.AcceptLosses {
		if !slices.Contains(archive.AcceptableLosses, a) {
			return &RefusedError{Name: req.Name, Reason: fmt.Sprintf("accept_losses: unknown kind %q", a),
				Advice: "use " + strings.Join(archive.AcceptableLosses, ", ")}
		}
	}
	if req.Store != nil {
		// Only a directory of this host can lie inside an instance.
		if dir, ok := archive.StoreDir(req.Store); ok {
			return checkArchiveDir(l, req.Name, dir)
		}
		return nil
	}
	return checkArchiveDir(l, req.Name, req.ArchiveDir)
}

// Delete archives, verifies, tombstones and quarantines one instance, in
// that order; nothing is moved before the archive is verified from disk.
// The tombstone is the journal: each state a deletion can stop in is
// written before it is entered. Re-running after success changes nothing
// and returns the tombstone; re-running after a crash or a failure
// completes the deletion. When something moved before a failure, the
// result comes back with the error, Changed set.
func Delete(ctx context.Context, l *instance.Layout, req Request) (*Result, error) {
	ctx = archive.WithProgress(ctx, req.Progress)
	if err := checkRequest(l, req); err != nil {
		return nil, err
	}
	if err := store.CheckKey(req.Name); err != nil {
		return nil, err
	}
	st, err := openStore(ctx, req.Store, req.ArchiveDir)
	if err != nil {
		return nil, err
	}
	sh := shelf{st: st, name: req.Name}
	if err := checkObjectLock(ctx, req, st); err != nil {
		return nil, err
	}
	if req.CheckMode {
		return plan(ctx, l, req, sh)
	}
	// The host-wide lock first: another run on this instance with another
	// archive_dir holds it too.
	unlockHost, err := lockInstance(l, req.Name)
	if err != nil {
		return nil, err
	}
	defer unlockHost()
	undo, err := sh.prepare()
	if err != nil {
		return nil, err
	}
	unlock, err := sh.lock(ctx)
	if err != nil {
		return nil, err
	}
	// A refusal leaves nothing it created behind (a directory store: the
	// lock goes while it is held, then each directory this run created,
	// if empty).
	defer func() {
		undo()
		unlock()
	}()
	req.step("lock")
	sh.tidy()

	res := &Result{Quarantined: []QuarantineMove{}, Orphans: []Orphan{}}
	if err := settleInterrupted(ctx, req, l.App, sh, res); err != nil {
		return resultOrNil(res), err
	}
	if err := sweepInto(ctx, sh, req.CheckMode, res); err != nil {
		return resultOrNil(res), err
	}

	inst, err := l.Resolve(ctx, req.Name, resolveOptions(req))
	var nf *instance.NotFoundError
	if errors.As(err, &nf) {
		// Already deleted: return the tombstone, change nothing.
		ts, terr := latestTombstone(ctx, sh, l.App)
		if terr != nil || ts == nil {
			res.Msg = nf.Error()
			return res, terr
		}
		if ts.State == StateQuarantining {
			return finishQuarantine(ctx, req, ts, res)
		}
		res.Msg, res.Tombstone, res.Quarantined = "already deleted", ts.info(), ts.Components
		return res, nil
	}
	if err != nil {
		return resultOrNil(res), err
	}

	// A tombstone whose moves are not all done is a deletion interrupted
	// after its archive was verified: finish it.
	if ts, err := latestTombstone(ctx, sh, l.App); err != nil {
		return resultOrNil(res), err
	} else if ts != nil && ts.State == StateQuarantining {
		return finishQuarantine(ctx, req, ts, res)
	}

	if req.Fingerprint != "" && req.Fingerprint != inst.Fingerprint() {
		return resultOrNil(res), &RefusedError{Name: req.Name, Reason: "the instance no longer matches the approved fingerprint",
			Advice: "run the plan again (instance_info) and review what changed"}
	}
	if req.StopService {
		if inst, err = stopUnits(ctx, l, req, inst); err != nil {
			return resultOrNil(res), err
		}
	}
	if err := preflight(ctx, l, req, inst); err != nil {
		return resultOrNil(res), err
	}

	// Every file first: what cannot be archived whole, or must not be
	// crossed, is named all at once before anything is written.
	col := archive.NewCollector(req.AcceptLosses)
	col.HashSmall = true
	col.KeepRecords(sh.spoolFile)
	defer col.Close()
	for _, c := range l.Components {
		if st, _ := inst.State(c.Name); st.Present && archive.ShapeOf(c.Type).IsTree() {
			if err := col.AddComponent(kind.Target{App: l.App, Instance: inst.Name, Component: c, Locator: st.Locator}); err != nil {
				return resultOrNil(res), err
			}
		}
	}
	if err := col.Err(inst.Name); err != nil {
		return resultOrNil(res), err
	}
	res.Losses = col.Losses()
	res.LossCounts, res.LossesTotal = col.LossCounts()

	now := time.Now().UTC()
	id := newID(now)
	ts := sh.newTombstone(&Tombstone{ID: id, Instance: inst.Name, App: l.App, Host: inst.Host,
		ArchivePath: sh.loc(id + archiveExt), Reason: req.Reason, RequestedBy: req.RequestedBy, JobID: req.JobID, Launch: req.Launch,
		DeletedAt: now, PurgeAfter: now.Add(time.Duration(req.RetentionDays) * 24 * time.Hour), RetentionDays: req.RetentionDays,
		State: StateArchiving, ToolVersion: archive.Version, RetentionRecords: true,
		Components: plannedMoves(l, inst, id)})
	if err := ts.write(); err != nil {
		return resultOrNil(res), fmt.Errorf("write the tombstone before archiving: %w; nothing was moved", err)
	}
	req.step("journal")
	info, err := archiveInstance(ctx, l, req, sh, inst, col, ts, now)
	if err != nil {
		// Nothing moved: no archive is kept that was not verified, and
		// the journal entry goes with it.
		bg := context.WithoutCancel(ctx)
		ts.removeArchive(bg)
		st.Remove(bg, ts.key)
		return resultOrNil(res), err
	}
	res.Archive = info
	if res.ArchiveLock, err = lockArchive(ctx, req, sh, ts); err != nil {
		// Nothing moved; an archive the store keeps locked stays (and
		// the next run reports it as a spare copy).
		bg := context.WithoutCancel(ctx)
		if rerr := ts.removeArchive(bg); rerr != nil {
			res.Changed = true
			return res, fmt.Errorf("%w; nothing was moved; the verified archive %s stays (%v)", err, ts.ArchivePath, rerr)
		}
		st.Remove(bg, ts.key)
		return resultOrNil(res), err
	}

	ts.ArchiveSHA256 = info.SHA256
	ts.ArchiveStoreChecksum = info.StoreChecksum
	ts.State = StateQuarantining
	if err := ts.write(); err != nil {
		// The journal still says archiving: the next run reports this
		// archive and makes a new one. The archive stays: a change.
		res.Changed = true
		return res, fmt.Errorf("write the tombstone of %s: %w; nothing was moved; the verified archive %s is kept and the next run reports it", inst.Name, err, ts.ArchivePath)
	}
	req.step("tombstone")
	res.Tombstone = ts.info()
	done, err := moveAll(ctx, req, ts)
	// From here on a verified archive and a journal that drives the next
	// run stay on the host, whatever happens: changed, even when nothing
	// has moved yet.
	res.Changed = true
	res.Quarantined = ts.Components[:done]
	if err != nil {
		return res, incomplete(ts, done, err)
	}
	// The last check, inside quarantine: a write that slipped between
	// the re-stat and the rename is caught here, and everything goes
	// back.
	if changes := col.ChangedSince(ts.moved()); len(changes) > 0 {
		return res, rollBack(ctx, req, ts, changes, res)
	}
	ts.State = StateQuarantined
	if err := ts.write(); err != nil {
		return res, incomplete(ts, done, fmt.Errorf("every component is in quarantine but the tombstone could not be marked quarantined: %w", err))
	}
	req.step("quarantined")
	res.Tombstone = ts.info()
	res.Quarantined = ts.Components
	return res, nil
}

// sweepInto removes (or marks) the orphans of the instance's folder and
// says so in the result.
func sweepInto(ctx context.Context, sh shelf, checkMode bool, res *Result) error {
	orphans, err := sweepOrphans(ctx, sh, checkMode)
	if err != nil {
		return fmt.Errorf("look for RESTORE.md and sidecars without their archive under %s: %w", sh.where(), err)
	}
	res.Orphans = append(res.Orphans, orphans...)
	for _, o := range orphans {
		res.Warnings = append(res.Warnings, o.String())
	}
	res.Changed = res.Changed || orphansChanged(orphans)
	return nil
}

// resultOrNil returns res when it carries something worth returning with
// an error (warnings, a change), nil otherwise.
func resultOrNil(res *Result) *Result {
	if res.Changed || len(res.Warnings) > 0 {
		return res
	}
	return nil
}

// archiveInstance dumps the databases, writes the archive and verifies it
// from disk, then checks that nothing changed since the files were
// collected.
func archiveInstance(ctx context.Context, l *instance.Layout, req Request, sh shelf, inst *instance.Instance, col *archive.Collector, ts *Tombstone, now time.Time) (*archive.Info, error) {
	work, err := sh.workDir(ts.ID)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	purgeAfter, days := ts.PurgeAfter, ts.RetentionDays
	m := &archive.Manifest{Format: archive.Format, ID: ts.ID, Instance: inst.Name, App: l.App, Layout: l.Source,
		Host: inst.Host, Fingerprint: inst.Fingerprint(), Reason: req.Reason, RequestedBy: req.RequestedBy,
		JobID: req.JobID, ToolVersion: archive.Version, CreatedAt: now, Files: []archive.FileEntry{}, Databases: []archive.DumpEntry{},
		AcceptLosses: req.AcceptLosses, RetentionRecords: true, // col.Write streams every loss
		PurgeAfter: &purgeAfter, RetentionDays: &days}
	var dumps []archive.DumpFile
	var since []kind.Since
	env := req.Options.Env()
	for _, c := range l.Components {
		st, _ := inst.State(c.Name)
		mc := archive.ManifestComponent{Name: c.Name, Type: c.Type, Locator: st.Locator, Present: st.Present}
		k, err := kindOf(c.Type)
		if err != nil {
			return nil, fmt.Errorf("component %s: %w", c.Name, err)
		}
		if st.Present {
			switch k.Shape() {
			case kind.TreeDir, kind.TreeFile:
				mc.ArchivePath = "components/" + c.Name
			case kind.Dump:
				d := archive.DumpFile{Path: filepath.Join(work, c.Name+k.DumpExt()),
					Entry: archive.DumpEntry{Component: c.Name, Database: st.Locator, Path: "components/" + c.Name + k.DumpExt()}}
				t := kind.Target{App: l.App, Instance: inst.Name, Component: c, Locator: st.Locator}
				changed, err := k.Dump(ctx, env, t, d.Path)
				if err != nil {
					return nil, fmt.Errorf("dump component %s: %w", c.Name, err)
				}
				since = append(since, changed)
				if err := describeDump(k, &d); err != nil {
					return nil, err
				}
				dumps = append(dumps, d)
				m.Databases = append(m.Databases, d.Entry)
				mc.ArchivePath = d.Entry.Path
			}
		}
		m.Components = append(m.Components, mc)
	}
	req.step("dump")
	if err := col.HashAll(); err != nil {
		return nil, err
	}
	req.step("hash")
	unlimit := limitMemory()
	info, err := col.Write(ctx, sh.st, ts.archiveKey(), m, archive.Runbook(m, ts.ArchivePath), dumps, work, req.step)
	unlimit()
	if err != nil {
		return nil, err
	}
	req.step("archive")
	// Read back while it was written (a directory store), the archive
	// may be verified already (writeArchive, createArchive): unless the
	// file committed changed since (its stamp), which the read-back
	// after the commit then judges, as for any other store.
	if !info.StillAsVerified() {
		// What wrote the archive (the zstd encoder's windows, the store's
		// part buffers) is garbage now: returned before the read-back
		// allocates the decoder's, the peak memory is the larger of the two
		// phases, not their sum (issue 13: 64 MiB to S3; one collection of a
		// small heap, a few milliseconds).
		debug.FreeOSMemory()
		if err := archive.VerifyWritten(ctx, sh.st, ts.archiveKey(), work); err != nil {
			return nil, col.ExplainVerifyError(err)
		}
	}
	info.Verified = true
	req.step("verify")
	// What is moved must be what was archived: a component swapped for a
	// link (to / or to another instance) meanwhile is refused, and so is
	// any entry written, truncated, replaced or removed since it was
	// collected.
	if err := checkTops(col, inst.Name); err != nil {
		return nil, err
	}
	changes := col.ChangedSince(nil)
	for _, changed := range since {
		c, err := changed(ctx)
		if err != nil {
			return nil, err
		}
		changes = append(changes, c...)
	}
	if len(changes) > 0 {
		return nil, &LateChangeError{Name: inst.Name, Changes: changes}
	}
	return info, nil
}

// plannedMoves lists where each present component goes.
func plannedMoves(l *instance.Layout, inst *instance.Instance, id string) []QuarantineMove {
	var out []QuarantineMove
	for _, c := range l.Components {
		st, _ := inst.State(c.Name)
		if !st.Present {
			continue
		}
		k, ok := c.Kind()
		if !ok {
			continue // refused before: archiveInstance names it
		}
		from, ok := k.QuarantineSource(st)
		if !ok {
			continue // a unit known to systemctl only: nothing to move
		}
		out = append(out, QuarantineMove{Component: c.Name, Type: c.Type, From: from, To: k.QuarantineTarget(from, id)})
	}
	return out
}

func incomplete(ts *Tombstone, done int, err error) error {
	e := &IncompleteError{Name: ts.Instance, Tombstone: ts.Path, State: StateQuarantining, Err: err}
	for i, m := range ts.Components {
		if i < done {
			e.Moved = append(e.Moved, m.Component)
		} else {
			e.InPlace = append(e.InPlace, m.Component)
		}
	}
	return e
}

// finishQuarantine completes the moves of a tombstone left quarantining.
func finishQuarantine(ctx context.Context, req Request, ts *Tombstone, res *Result) (*Result, error) {
	res.Tombstone = ts.info()
	// What is still in place must still be what the archive holds.
	changes, err := changedInPlace(ctx, ts)
	if err != nil {
		return resultOrNil(res), err
	}
	if len(changes) > 0 {
		res.Changed = true
		return res, rollBack(ctx, req, ts, changes, res)
	}
	done, err := moveAll(ctx, req, ts)
	res.Quarantined = ts.Components[:done]
	// Every move before done is in quarantine now; whether this run or
	// the interrupted one moved it, the deletion is progressing.
	res.Changed = true
	if err != nil {
		return res, incomplete(ts, done, err)
	}
	ts.State = StateQuarantined
	if err := ts.write(); err != nil {
		return res, incomplete(ts, done, fmt.Errorf("every component is in quarantine but the tombstone could not be marked quarantined: %w", err))
	}
	res.Msg = "completed an interrupted deletion"
	res.Tombstone = ts.info()
	res.Quarantined = ts.Components
	return res, nil
}

// changedInPlace compares the file components an interrupted deletion has
// not moved yet with its archive's manifest (type, size, mtime of every
// entry; a directory's mtime shows an entry added or removed).
func changedInPlace(ctx context.Context, ts *Tombstone) ([]string, error) {
	pending := map[string]QuarantineMove{}
	for _, m := range ts.Components {
		if !archive.ShapeOf(m.Type).IsTree() {
			continue
		}
		if _, err := os.Lstat(m.From); err == nil {
			pending[m.Component] = m
		}
	}
	if len(pending) == 0 {
		return nil, nil
	}
	man, _, err := archive.Check(ctx, ts.st, ts.archiveKey())
	if err != nil {
		return nil, fmt.Errorf("finish the interrupted deletion %s: its archive no longer verifies: %w; nothing more was moved", ts.ID, err)
	}
	var out []string
	for _, e := range man.Files {
		m, ok := pending[e.Component]
		if !ok {
			continue
		}
		p := m.From
		if archive.ShapeOf(m.Type) == kind.TreeDir {
			rest := strings.TrimPrefix(e.Name(), "components/"+e.Component)
			p = filepath.Join(m.From, filepath.FromSlash(rest))
		}
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			out = append(out, p+" is gone")
		case e.Type == "file" && fi.Size() != e.Size:
			out = append(out, fmt.Sprintf("%s: size %d, now %d", p, e.Size, fi.Size()))
		case (e.Type == "file" || e.Type == "dir") && !fi.ModTime().Equal(e.MTime):
			out = append(out, p+": modified (mtime)")
		}
		if len(out) >= 20 {
			out = append(out, "and maybe more")
			break
		}
	}
	return out, nil
}

// rollBack moves every component back from quarantine after a late change
// was found there, journaled as rolling_back, then abandoned.
func rollBack(ctx context.Context, req Request, ts *Tombstone, changes []string, res *Result) error {
	ts.State = StateRollingBack
	ts.Note = "late changes: " + strings.Join(changes, "; ")
	if err := ts.write(); err != nil {
		return incomplete(ts, len(ts.Components), fmt.Errorf("entries changed during quarantine (%s) and the tombstone could not be marked rolling_back: %w", strings.Join(changes, "; "), err))
	}
	if err := moveAllBack(ctx, req, ts); err != nil {
		return fmt.Errorf("entries changed during quarantine (%s); moving back failed: %w; the tombstone %s says rolling_back and the next run finishes moving back", strings.Join(changes, "; "), err, ts.Path)
	}
	res.Quarantined = []QuarantineMove{}
	ts.removeArchive(ctx)
	ts.State = StateAbandoned
	ts.Note = "moved back from quarantine, archive removed: it missed late changes: " + strings.Join(changes, "; ")
	if err := ts.write(); err != nil {
		return fmt.Errorf("every component is back in place but the tombstone %s could not be marked abandoned: %w", ts.Path, err)
	}
	res.Tombstone = ts.info()
	res.Archive = nil
	return &LateChangeError{Name: ts.Instance, Changes: changes, MovedBack: true}
}

// settleInterrupted deals with what an earlier run left before its
// tombstone said quarantining: a journal entry still archiving (killed
// while archiving, or between the archive and the tombstone), a deletion
// rolling back, or an archive with no tombstone at all. Each is reported
// in res.Warnings and recorded, never ignored.
//
// Only this app's deletions are settled: another app's instance of the
// same name shares archive_dir/<name>/, and its journal is its own.
func settleInterrupted(ctx context.Context, req Request, app string, sh shelf, res *Result) error {
	all, err := sh.tombstones(ctx)
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for _, ts := range all {
		ids[ts.ID] = true
		if !ofApp(ts, app) {
			continue
		}
		switch ts.State {
		case StateArchiving:
			what := "before its archive was complete"
			if err := archive.VerifyWritten(ctx, ts.st, ts.archiveKey(), ""); err == nil {
				what = "after its archive " + ts.ArchivePath + " was written and verified, before its tombstone"
				// Kept as a spare copy; its runbook says so on top.
				if _, merr := markSpareRunbook(ctx, ts.st, ts.archiveKey(), ts.Instance, ts.ID, time.Now()); merr != nil {
					res.Warnings = append(res.Warnings, fmt.Sprintf("the RESTORE.md of the spare archive %s could not be marked as a spare copy (%v): read by hand it looks like a deletion's runbook; %s was not deleted by it", ts.ArchivePath, merr, ts.Instance))
				}
			} else if rerr := ts.removeArchive(ctx); rerr != nil {
				// Said, never skipped: what stays is not used
				// automatically (the tombstone is abandoned) and the
				// orphan sweep marks a runbook left without its archive.
				res.Warnings = append(res.Warnings, fmt.Sprintf("what the interrupted deletion %s of %s wrote of its incomplete archive %s could not all be removed: %v", ts.ID, ts.Instance, ts.ArchivePath, rerr))
			}
			ts.State = StateAbandoned
			ts.Note = "interrupted " + what + "; nothing had been moved"
			if err := ts.write(); err != nil {
				return err
			}
			res.Warnings = append(res.Warnings, fmt.Sprintf("an earlier deletion of %s (id %s) was interrupted %s; nothing had been moved; marked abandoned in %s", ts.Instance, ts.ID, what, ts.Path))
		case StateRollingBack:
			found, err := finishRollBack(ctx, req, ts, "a soft delete")
			if err != nil {
				if found == "" {
					return fmt.Errorf("finish moving back the deletion %s of %s (tombstone %s): %w", ts.ID, ts.Instance, ts.Path, err)
				}
				res.Changed = true
				return err
			}
			res.Changed = true
			res.Warnings = append(res.Warnings, fmt.Sprintf("an earlier deletion of %s (id %s) was rolling back after late changes; its components were moved back; %s", ts.Instance, ts.ID, found))
		}
	}
	archives, err := sh.archives(ctx)
	if err != nil {
		return err
	}
	for _, file := range archives {
		id := strings.TrimSuffix(file, archiveExt)
		if ids[id] {
			continue
		}
		a := sh.loc(file)
		// Recorded once, as an abandoned deletion, so that it is named
		// in this result and kept on record afterwards.
		ts := sh.newTombstone(&Tombstone{ID: id, Instance: req.Name, ArchivePath: a, State: StateAbandoned, ToolVersion: archive.Version,
			Note: "archive found without a tombstone: its deletion was interrupted between the archive and the tombstone; nothing had been moved"})
		if m, err := readManifestHead(ctx, sh.st, sh.key(file)); err == nil {
			ts.App = m.App // it may be another app's instance of this name
		}
		if err := ts.write(); err != nil {
			return err
		}
		if _, merr := markSpareRunbook(ctx, sh.st, sh.key(file), req.Name, id, time.Now()); merr != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("the RESTORE.md of the spare archive %s could not be marked as a spare copy (%v): read by hand it looks like a deletion's runbook; %s was not deleted by it", a, merr, req.Name))
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("the archive %s had no tombstone: a deletion was interrupted between its archive and its tombstone; nothing had been moved; it is kept as an extra copy and recorded as abandoned in %s", a, ts.Path))
	}
	return nil
}

func describeDump(k kind.Kind, d *archive.DumpFile) error {
	f, err := os.Open(d.Path)
	if err != nil {
		return fmt.Errorf("read dump: %w", err)
	}
	defer f.Close()
	h := newHasher()
	sum, err := k.VerifyDump(teeHash(f, h))
	if err != nil {
		return fmt.Errorf("dump of %s: %w", d.Entry.Database, err)
	}
	if err := drain(f, h); err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	d.Entry.Size = st.Size()
	d.Entry.SHA256 = h.hex()
	d.Entry.TOCEntries, d.Entry.DataBlocks = sum.Entries, sum.DataBlocks
	return nil
}

// preflight refuses, with nothing changed, what must not be deleted now:
// components that are unsafe to touch, active units, open connections.
func preflight(ctx context.Context, l *instance.Layout, req Request, inst *instance.Instance) error {
	env := req.Options.Env()
	for _, st := range inst.Components {
		k, err := kindOf(st.Type)
		if err != nil {
			return &RefusedError{Name: inst.Name, Reason: fmt.Sprintf("component %s: %v", st.Name, err)}
		}
		if st.Present && k.Family() == kind.FamilyPath {
			if err := sameFilesystem(inst.Name, st.Locator); err != nil {
				return err
			}
		}
		if st.Present && st.Problem != "" {
			return &RefusedError{Name: inst.Name, Reason: fmt.Sprintf("component %s: %s", st.Name, st.Problem),
				Advice: "inspect the component by hand"}
		}
		if st.Active != nil && *st.Active {
			return &RefusedError{Name: inst.Name, Reason: fmt.Sprintf("unit %s is active", st.Locator),
				Advice: "stop the unit first, or set stop_service: true"}
		}
		if st.Present {
			refusal, err := k.Preflight(ctx, env, st)
			if err != nil {
				return err
			}
			if refusal != nil {
				return &RefusedError{Name: inst.Name, Reason: refusal.Reason, Advice: refusal.Advice}
			}
		}
	}
	return nil
}

// stopUnits stops the instance's active units and looks again.
func stopUnits(ctx context.Context, l *instance.Layout, req Request, inst *instance.Instance) (*instance.Instance, error) {
	stopped := false
	for _, st := range inst.Components {
		if st.Active != nil && *st.Active {
			if err := instance.StopUnit(ctx, req.Options, st.Locator); err != nil {
				return nil, err
			}
			stopped = true
		}
	}
	if !stopped {
		return inst, nil
	}
	return l.Resolve(ctx, req.Name, resolveOptions(req))
}

// resolveOptions are the discovery options of a deletion that runs (not
// its plan): without sizes. The collector walks and reads every file
// itself, and nothing of the deletion uses the sizes discovery would add
// (nor the latest modification found with them): their walk would only
// read every directory of the instance once more (about 5 % of the time
// of an instance of 8,000 small files). The plan (check mode) keeps them:
// it reports the bytes it would archive.
func resolveOptions(req Request) instance.Options {
	o := req.Options
	o.SkipSizes = true
	return o
}

func plan(ctx context.Context, l *instance.Layout, req Request, sh shelf) (*Result, error) {
	warnings := pendingWarnings(ctx, sh, l.App)
	res, err := planMoves(ctx, l, req, sh)
	if res != nil {
		res.Warnings = append(warnings, res.Warnings...)
		if res.Orphans == nil {
			res.Orphans = []Orphan{}
		}
		if serr := sweepInto(ctx, sh, true, res); serr != nil && err == nil {
			err = serr
		}
	}
	return res, err
}

// pendingWarnings names, without touching them, what a real run would
// settle first (settleInterrupted): deletions interrupted before their
// tombstone said quarantining, or rolling back, and archives without a
// tombstone.
func pendingWarnings(ctx context.Context, sh shelf, app string) []string {
	all, err := sh.tombstones(ctx)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	ids := map[string]bool{}
	for _, ts := range all {
		ids[ts.ID] = true
		if !ofApp(ts, app) {
			continue
		}
		switch ts.State {
		case StateArchiving, StateRollingBack:
			out = append(out, fmt.Sprintf("an earlier deletion of %s (id %s) was interrupted in state %s; a real run settles it first (tombstone %s)", ts.Instance, ts.ID, ts.State, ts.Path))
		}
	}
	archives, err := sh.archives(ctx)
	if err != nil {
		out = append(out, err.Error())
	}
	for _, a := range archives {
		if !ids[strings.TrimSuffix(a, archiveExt)] {
			out = append(out, fmt.Sprintf("the archive %s has no tombstone: a deletion was interrupted between its archive and its tombstone", sh.loc(a)))
		}
	}
	return out
}

func planMoves(ctx context.Context, l *instance.Layout, req Request, sh shelf) (*Result, error) {
	inst, err := l.Resolve(ctx, req.Name, req.Options)
	var nf *instance.NotFoundError
	if errors.As(err, &nf) {
		ts, _ := latestTombstone(ctx, sh, l.App)
		res := &Result{Msg: nf.Error(), Quarantined: []QuarantineMove{}}
		if ts != nil {
			res.Tombstone = ts.info()
		}
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	if req.Fingerprint != "" && req.Fingerprint != inst.Fingerprint() {
		return nil, &RefusedError{Name: req.Name, Reason: "the instance no longer matches the approved fingerprint",
			Advice: "run the plan again (instance_info) and review what changed"}
	}
	if err := preflight(ctx, l, req, inst); err != nil {
		return nil, err
	}
	p := &Plan{Components: []string{}, Databases: []string{}}
	var moves []QuarantineMove
	col := archive.NewCollector(req.AcceptLosses)
	defer col.Close()
	for _, c := range l.Components {
		st, _ := inst.State(c.Name)
		k, err := kindOf(c.Type)
		if err != nil {
			return nil, fmt.Errorf("component %s: %w", c.Name, err)
		}
		if !st.Present || k.Shape() == kind.None {
			continue
		}
		p.Components = append(p.Components, c.Name)
		moves = append(moves, QuarantineMove{Component: c.Name, Type: c.Type, From: st.Locator, To: k.QuarantineTarget(st.Locator, "<id>")})
		switch k.Shape() {
		case kind.Dump:
			p.Databases = append(p.Databases, st.Locator)
			if st.SizeBytes != nil {
				p.Bytes += *st.SizeBytes
			}
		default:
			if err := col.AddComponent(kind.Target{App: l.App, Instance: inst.Name, Component: c, Locator: st.Locator}); err != nil {
				return nil, err
			}
		}
	}
	if err := col.Err(inst.Name); err != nil {
		return nil, err
	}
	entries, bytes := col.Totals()
	p.Files += entries
	p.Bytes += bytes
	counts, total := col.LossCounts()
	return &Result{Changed: true, Plan: p, Quarantined: moves, Losses: col.Losses(), LossCounts: counts, LossesTotal: total}, nil
}

func (t *Tombstone) info() *TombstoneInfo {
	return &TombstoneInfo{ID: t.ID, Path: t.Path, State: t.State, DeletedAt: t.DeletedAt, PurgeAfter: t.PurgeAfter}
}

// write puts the tombstone in its store, replacing the one there. The
// journal is written even when the run is being cancelled: it must say
// what happened.
func (t *Tombstone) write() error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	if t.st == nil {
		return fmt.Errorf("tombstone %s: not bound to a store", t.Path)
	}
	return t.st.Put(context.Background(), t.key, append(data, '\n'))
}

// shelf is the folder of the store holding the tombstone.
func (t *Tombstone) shelf() shelf { return shelf{st: t.st, name: path.Dir(t.key)} }

// archiveKey is the key of the archive the tombstone records ("" for
// none), in the tombstone's folder.
func (t *Tombstone) archiveKey() string {
	if t.archiveFile() == "" {
		return ""
	}
	return t.shelf().key(t.archiveFile())
}

// removeArchive removes the archive the tombstone records and its
// sidecar, when they are there. An archive is named after its deletion's
// id: a tombstone whose archive_path names another (edited) removes
// nothing, and says so.
func (t *Tombstone) removeArchive(ctx context.Context) error {
	if f := t.archiveFile(); f != "" && f != t.ID+archiveExt {
		return fmt.Errorf("the tombstone %s of deletion %s names the archive %s, not its own %s (edited, or copied from another deletion): that archive was left in place", t.Path, t.ID, f, t.ID+archiveExt)
	}
	return t.shelf().removeArchive(ctx, t.archiveFile())
}

// ReadTombstone reads one tombstone file of a directory store
// (<archive_dir>/<name>/<id>.tombstone.json).
func ReadTombstone(path string) (*Tombstone, error) {
	st, key, err := archive.FileStoreOf(path)
	if err != nil {
		return nil, fmt.Errorf("read tombstone: %w", err)
	}
	return readTombstone(context.Background(), st, key)
}

// ofApp reports whether a tombstone is of app's instance: archives are
// filed by instance name, so archive_dir/<name>/ may hold the deletions of
// several apps' instances of that name. A tombstone that names no app
// (the record of an archive found without a tombstone whose manifest could
// not be read) is taken as this app's, as before apps were told apart.
func ofApp(ts *Tombstone, app string) bool { return app == "" || ts.App == app || ts.App == "" }

// Tombstones returns the tombstones of an instance whose folder of a
// directory store is dir (<archive_dir>/<name>), oldest first.
func Tombstones(dir string) ([]*Tombstone, error) {
	dir = filepath.Clean(dir)
	st, err := store.NewFile(filepath.Dir(dir))
	if err != nil {
		return nil, err
	}
	return shelf{st: st, name: filepath.Base(dir)}.tombstones(context.Background())
}

// latestTombstone returns the newest tombstone of app's instance of the
// directory's name, of a deletion that moved or was about to move
// something: journal entries still archiving or abandoned (nothing moved)
// are not deletions to restore or finish, and another app's instance of
// the same name (filed in the same archive_dir/<name>/) is not this one.
func latestTombstone(ctx context.Context, sh shelf, app string) (*Tombstone, error) {
	ts, err := sh.tombstones(ctx)
	if err != nil {
		return nil, err
	}
	for i := len(ts) - 1; i >= 0; i-- {
		if ofApp(ts[i], app) && ts[i].State != StateArchiving && ts[i].State != StateAbandoned {
			return ts[i], nil
		}
	}
	return nil, nil
}
