package backup

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/store"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
)

// Options tunes a verification run.
type Options struct {
	// Names restricts the run to these instances.
	Names []string
	// RestoreTest is how many instances get a test restore of their
	// newest database dump this run.
	RestoreTest int
	// StateFile remembers when each instance was last test-restored, so
	// that run after run every instance gets its turn. Empty: no memory
	// (the first instances by name are chosen).
	StateFile string
	// Now is the time freshness is measured against (default: now).
	Now time.Time
	// Discovery finds the instances (and reaches PostgreSQL).
	Discovery instance.Options
	// Workers checks files in parallel (default: every core).
	Workers int
	// ArchiveDir is instance_soft_delete's archive_dir, when known: an
	// instance with a directory there is a known name for ownership (its
	// leftover backups are never credited to another instance), and a
	// tombstone there explains a database that vanishes mid-run.
	ArchiveDir string
	// KnownNames are further names known to exist (or to have existed)
	// besides the instances present, for ownership.
	KnownNames []string
	// S3 reaches the buckets of rules that name objects
	// (s3://bucket/prefix/{name}/...); its empty fields take the AWS_*
	// variables.
	S3 s3store.Settings
}

// Report is the outcome of a verification run.
type Report struct {
	App        string           `json:"app"`
	Instances  []InstanceReport `json:"instances"`
	Summary    Summary          `json:"summary"`
	Orphans    []Orphan         `json:"orphans"`
	VerifiedAt time.Time        `json:"verified_at"`
	// Warnings are problems of the run itself (such as a state file that
	// could not be written), not of the backups.
	Warnings []string `json:"-"`

	// facts holds the newest backup of each instance and component, for
	// metrics; a component with several rules keeps the oldest newest.
	facts map[string]FileFacts
}

// FileFacts describes a newest backup.
type FileFacts struct {
	Size  int64
	MTime time.Time
}

// InstanceReport holds the checks of one instance.
type InstanceReport struct {
	Name   string        `json:"name"`
	Status string        `json:"status"`
	Checks []CheckResult `json:"checks"`
}

// CheckResult is one check of one rule (or component) of one instance.
type CheckResult struct {
	Component string `json:"component"`
	Rule      string `json:"rule"`
	File      string `json:"file"`
	Check     string `json:"check"`
	Status    string `json:"status"`
	Detail    string `json:"detail"`
	Hint      string `json:"hint,omitempty"`
	// Finding is the typed problem behind a warning or failure.
	Finding Finding `json:"-"`
}

// Summary counts instances by status.
type Summary struct {
	Instances int `json:"instances"`
	OK        int `json:"ok"`
	Warning   int `json:"warning"`
	Failed    int `json:"failed"`
}

// Orphan is a backup whose instance no longer exists on this host.
type Orphan struct {
	Name      string   `json:"name"`
	Component string   `json:"component"`
	Files     []string `json:"files"`
}

// backupFile is one file matched by a rule (or one object, when path is
// s3://bucket/key: rem then reads it).
type backupFile struct {
	path  string
	size  int64
	mtime time.Time
	rem   *remotes
}

// ruleState is what a rule found for one instance.
type ruleState struct {
	rule   instance.BackupRule
	inst   *instance.Instance
	files  []backupFile // newest first, none dated in the future
	checks []CheckResult
	// database is the instance's database when the rule backs up a
	// postgresql component: a dump's header must name it.
	database string
	// result is what reading the newest file told.
	result fileResult
}

// newest returns the newest file, if any.
func (r *ruleState) newest() (backupFile, bool) {
	if len(r.files) == 0 {
		return backupFile{}, false
	}
	return r.files[0], true
}

func ok(c CheckResult, detail string) CheckResult {
	c.Status, c.Detail = StatusOK, detail
	return c
}

func skipped(c CheckResult, detail string) CheckResult {
	c.Status, c.Detail = StatusSkipped, detail
	return c
}

func bad(c CheckResult, status string, f Finding) CheckResult {
	c.Status, c.Detail, c.Hint, c.Finding = status, f.Error(), f.Hint(), f
	return c
}

// Verify checks the backups of every instance of the layout on this host.
func Verify(ctx context.Context, l *instance.Layout, opts Options) (*Report, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	for _, n := range opts.Names {
		if err := l.ValidateName(n); err != nil {
			return nil, err
		}
	}
	all, err := l.Discover(ctx, opts.Discovery)
	if err != nil {
		return nil, fmt.Errorf("discover instances: %w", err)
	}
	insts := all
	if len(opts.Names) > 0 {
		var missing []string
		for _, n := range opts.Names {
			if !slices.ContainsFunc(insts, func(i *instance.Instance) bool { return i.Name == n }) {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return nil, &instance.NotFoundError{Name: strings.Join(missing, ", "), App: l.App, Host: instance.Hostname()}
		}
		insts = slices.DeleteFunc(slices.Clone(insts), func(i *instance.Instance) bool { return !slices.Contains(opts.Names, i.Name) })
	}
	deleted, err := archivedNames(ctx, l, opts.ArchiveDir)
	if err != nil {
		return nil, err
	}
	// Ownership is decided against every instance present on the host,
	// whichever were asked for.
	var present []string
	for _, i := range all {
		present = append(present, i.Name)
	}
	own := findOwnersIn(ctx, l, newRemotes(opts.S3), present, append(slices.Clone(opts.KnownNames), deleted...))

	rep := &Report{App: l.App, VerifiedAt: opts.Now.UTC(), Instances: []InstanceReport{}, Orphans: []Orphan{},
		facts: map[string]FileFacts{}, Warnings: runOnRules(l)}
	states := make([][]*ruleState, len(insts))
	var jobs []fileJob
	for i, inst := range insts {
		for ri, r := range l.Backups {
			files, ambiguous := own.filesOf(ri, inst.Name)
			var database string
			var foreign []foreignDump
			if c, ok := l.Component(r.Component); ok {
				// A dump names its database (pg_custom's header, a
				// mysql_dump's "Database:" line): it must be this
				// instance's, whatever the database kind.
				if c.Family() == kind.FamilyDatabase {
					database = c.Template.Expand(inst.Name)
				}
				// A format whose files name their component (pg_custom:
				// the database, in the header), registered in formathook.go.
				if nf, applies, typed := namedBy(c.Type, r.Format); typed && applies {
					database = c.Template.Expand(inst.Name)
					files, foreign = splitForeignDumps(ctx, files, database, nf.name)
				}
			}
			st := scanRule(r, inst.Name, files, ambiguous, own.unreadableFor(l, ri, inst.Name), opts.Now)
			for _, fd := range foreign {
				c := CheckResult{Component: r.Component, Rule: r.Path, File: fd.path, Check: CheckOwner}
				st.checks = append(st.checks, bad(c, StatusFailed, &DatabaseMismatchError{Path: fd.path,
					Rule: ruleLabel(r), Want: database, Got: fd.database}))
			}
			st.database = database
			st.inst = inst
			states[i] = append(states[i], st)
			if f, ok := st.newest(); ok {
				jobs = append(jobs, fileJob{state: st, file: f})
				k := inst.Name + "\x00" + r.Component
				if prev, seen := rep.facts[k]; !seen || f.mtime.Before(prev.MTime) {
					rep.facts[k] = FileFacts{Size: f.size, MTime: f.mtime}
				}
			}
		}
	}
	if err := runFileJobs(ctx, jobs, opts.Workers); err != nil {
		return nil, err
	}
	if err := checkData(ctx, jobs, opts.Discovery.PG); err != nil {
		return nil, err
	}
	if opts.RestoreTest > 0 {
		if err := restoreTests(ctx, l, insts, states, opts, rep); err != nil {
			return nil, err
		}
	}
	for i, inst := range insts {
		ir := InstanceReport{Name: inst.Name, Status: StatusOK}
		ir.Checks = append(ir.Checks, coverage(l)...)
		for _, st := range states[i] {
			ir.Checks = append(ir.Checks, st.checks...)
		}
		for _, c := range ir.Checks {
			if rank(c.Status) > rank(ir.Status) {
				ir.Status = c.Status
			}
		}
		rep.Instances = append(rep.Instances, ir)
		rep.Summary.Instances++
		switch ir.Status {
		case StatusFailed:
			rep.Summary.Failed++
		case StatusWarning:
			rep.Summary.Warning++
		default:
			rep.Summary.OK++
		}
	}
	if len(opts.Names) == 0 {
		rep.Orphans = own.orphans(l)
	}
	return rep, nil
}

// archivedNames lists the instances that have an archive directory (a
// soft-deleted instance keeps its archives and tombstones there): known
// names for ownership, though not present.
func archivedNames(ctx context.Context, l *instance.Layout, dir string) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	st, err := store.Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	ents, err := store.ListFolders(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("archive_dir %s: cannot list it: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if e.NotDir == "" && l.ValidateName(e.Name) == nil {
			out = append(out, e.Name)
		}
	}
	return out, nil
}

// coverage reports components that have neither a rule nor backup: false.
func coverage(l *instance.Layout) []CheckResult {
	var out []CheckResult
	for _, c := range l.Components {
		res := CheckResult{Component: c.Name, Check: CheckCoverage}
		switch {
		case c.Backup != nil && !*c.Backup:
			out = append(out, ok(res, "backup: false (not backed up on purpose)"))
		case slices.ContainsFunc(l.Backups, func(r instance.BackupRule) bool { return r.Component == c.Name }):
			out = append(out, ok(res, "covered by a backup rule"))
		default:
			out = append(out, bad(res, StatusFailed, &UncoveredError{Component: c.Name}))
		}
	}
	return out
}

// scanRule runs, on the files credited to one instance by one rule, the
// checks that need no reading: owner, present, fresh, size, shrink.
func scanRule(r instance.BackupRule, name string, files []backupFile, ambiguous []ownedFile, unreadable []dirError, now time.Time) *ruleState {
	st := &ruleState{rule: r}
	label := ruleLabel(r)
	pattern := expandRule(r, name)
	base := CheckResult{Component: r.Component, Rule: r.Path}
	for _, a := range ambiguous {
		c := withCheck(base, CheckOwner)
		c.File = a.path
		if a.link != "" {
			st.checks = append(st.checks, bad(c, StatusFailed, &LinkedError{Path: a.path, Link: a.link, Rule: label}))
			continue
		}
		st.checks = append(st.checks, bad(c, StatusFailed, &AmbiguousError{Path: a.path, Rule: label, Names: a.owners}))
	}
	if len(ambiguous) == 0 {
		st.checks = append(st.checks, ok(withCheck(base, CheckOwner), fmt.Sprintf("%d file(s) of %s, none another known name can claim", len(files), label)))
	}
	var future []backupFile
	for _, f := range files {
		if f.mtime.After(now.Add(clockSkew)) {
			future = append(future, f)
		} else {
			st.files = append(st.files, f)
		}
	}
	sort.Slice(st.files, func(i, j int) bool {
		if !st.files[i].mtime.Equal(st.files[j].mtime) {
			return st.files[i].mtime.After(st.files[j].mtime)
		}
		return st.files[i].path > st.files[j].path
	})
	for _, u := range unreadable {
		c := withCheck(base, CheckPresent)
		c.File = u.Dir
		st.checks = append(st.checks, bad(c, StatusFailed, &UnreadableError{Dir: u.Dir, Rule: label, Err: u.Err}))
	}
	for _, f := range future {
		c := withCheck(base, CheckFresh)
		c.File = f.path
		st.checks = append(st.checks, bad(c, StatusFailed, &FutureError{Path: f.path, MTime: f.mtime, Now: now, Tolerance: clockSkew}))
	}
	newest, found := st.newest()
	if !found {
		if len(unreadable) == 0 {
			f := &MissingError{Pattern: pattern, Rule: label}
			if len(future) > 0 {
				f.Note = fmt.Sprintf("%d file(s) dated more than %s in the future are not counted", len(future), clockSkew)
			}
			st.checks = append(st.checks, bad(withCheck(base, CheckPresent), StatusFailed, f))
		}
		for _, c := range []string{CheckFresh, CheckSize, CheckShrink, CheckChecksum, CheckFormat} {
			st.checks = append(st.checks, skipped(withCheck(base, c), "no backup"))
		}
		return st
	}
	base.File = newest.path
	if len(unreadable) == 0 {
		st.checks = append(st.checks, ok(withCheck(base, CheckPresent), fmt.Sprintf("%d backup(s), newest %s", len(st.files), filepath.Base(newest.path))))
	}

	age := now.Sub(newest.mtime)
	switch {
	case r.MaxAge == 0:
		st.checks = append(st.checks, skipped(withCheck(base, CheckFresh), "no max_age in the rule"))
	case age > r.MaxAge:
		st.checks = append(st.checks, bad(withCheck(base, CheckFresh), StatusFailed, &StaleError{Path: newest.path, Age: age, Max: r.MaxAge}))
	default:
		st.checks = append(st.checks, ok(withCheck(base, CheckFresh), fmt.Sprintf("%s old, max_age %s", max(age, 0).Round(time.Minute), r.MaxAge)))
	}

	if newest.size == 0 || newest.size < r.MinSize {
		st.checks = append(st.checks, bad(withCheck(base, CheckSize), StatusFailed, &TooSmallError{Path: newest.path, Size: newest.size, Min: r.MinSize}))
	} else {
		st.checks = append(st.checks, ok(withCheck(base, CheckSize), fmt.Sprintf("%d bytes, min_size %d", newest.size, r.MinSize)))
	}

	switch {
	case r.MaxShrink == 0:
		st.checks = append(st.checks, skipped(withCheck(base, CheckShrink), "no max_shrink in the rule"))
	case len(st.files) < 2:
		st.checks = append(st.checks, skipped(withCheck(base, CheckShrink), "no previous backup to compare with"))
	case float64(newest.size) < r.MaxShrink*float64(st.files[1].size):
		st.checks = append(st.checks, bad(withCheck(base, CheckShrink), StatusFailed, &ShrinkError{Path: newest.path,
			Previous: st.files[1].path, Size: newest.size, PreviousSize: st.files[1].size, Min: r.MaxShrink}))
	default:
		st.checks = append(st.checks, ok(withCheck(base, CheckShrink), fmt.Sprintf("%d bytes, previous %d", newest.size, st.files[1].size)))
	}
	return st
}

func withCheck(c CheckResult, check string) CheckResult {
	c.Check = check
	return c
}

type fileJob struct {
	state *ruleState
	file  backupFile
}

// runFileJobs reads every newest backup once, for checksum and format, on
// every core; each worker holds only its read buffers.
func runFileJobs(ctx context.Context, jobs []fileJob, workers int) error {
	results := make([]fileResult, len(jobs))
	errs := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				j := jobs[i]
				results[i], errs[i] = checkBackup(ctx, j.file.rem, j.file.path, j.state.rule.Format, j.state.rule.Checksum == "sha256_sidecar")
			}
		})
	}
	for i := range jobs {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, j := range jobs {
		base := CheckResult{Component: j.state.rule.Component, Rule: j.state.rule.Path, File: j.file.path}
		r := results[i]
		if errs[i] != nil {
			// An unreadable backup is a failed backup, never a skipped one.
			r.checked = true
			r.format = &FormatError{Path: j.file.path, Format: j.state.rule.Format, Msg: "cannot be read: " + errs[i].Error()}
		}
		switch {
		case j.state.rule.Checksum == "":
			j.state.checks = append(j.state.checks, skipped(withCheck(base, CheckChecksum), "no checksum in the rule"))
		case r.checksum != nil:
			j.state.checks = append(j.state.checks, bad(withCheck(base, CheckChecksum), StatusFailed, r.checksum))
		default:
			j.state.checks = append(j.state.checks, ok(withCheck(base, CheckChecksum), "sha256 matches the sidecar"))
		}
		switch {
		case !r.checked:
			j.state.checks = append(j.state.checks, skipped(withCheck(base, CheckFormat), "format any: content not recognised (not a pg_dump, tar, zip, gzip or zstd file)"))
		case r.format != nil:
			j.state.checks = append(j.state.checks, bad(withCheck(base, CheckFormat), StatusFailed, r.format))
		case j.state.rule.Format == "any" || r.kind != j.state.rule.Format:
			j.state.checks = append(j.state.checks, ok(withCheck(base, CheckFormat), fmt.Sprintf("%s: %s complete to its end", j.state.rule.Format, r.kind)))
		default:
			j.state.checks = append(j.state.checks, ok(withCheck(base, CheckFormat), j.state.rule.Format+" complete to its end"))
		}
		// A pg_custom dump or a mysql_dump names its database: it must be
		// this instance's.
		if j.state.database != "" && r.database != "" {
			c := withCheck(base, CheckOwner)
			if r.database != j.state.database {
				j.state.checks = append(j.state.checks, bad(c, StatusFailed, &DatabaseMismatchError{Path: j.file.path,
					Rule: ruleLabel(j.state.rule), Want: j.state.database, Got: r.database}))
			} else {
				j.state.checks = append(j.state.checks, ok(c, fmt.Sprintf("dump of database %s, this instance's", r.database)))
			}
		}
		j.state.result = r
	}
	return nil
}
