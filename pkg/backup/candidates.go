package backup

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// Candidate is one backup file credited to one instance by one rule: what
// a restore from backups may use. Candidates are listed newest first.
type Candidate struct {
	Rule  instance.BackupRule
	Path  string
	Size  int64
	MTime time.Time
	// Content, when set, is where the file's content is read from
	// instead of Path: the /proc path of a descriptor the caller holds
	// open, so that the file judged is the file it then restores, even
	// when Path is renamed over meanwhile. Sidecars and names still
	// come from Path.
	Content string
	// Refused, when not empty, are the failed checks that make this file
	// unusable before it is even read (ownership, a date in the future).
	Refused []CheckResult
	// rem reads Path when it names an object (s3://bucket/key).
	rem *remotes
}

// Remote reports whether the candidate is an object in object storage
// (Path is s3://bucket/key): a restore reads it through Download.
func (c Candidate) Remote() bool { return isRemote(c.Path) }

// Download copies a remote candidate into a file of a private temporary
// directory under dir (the system's temporary directory when ""), for
// the restores that read a file: the caller reads it through f and calls
// remove when done (the copy is then gone).
func (c Candidate) Download(ctx context.Context, dir string) (f *os.File, remove func(), err error) {
	if !c.Remote() {
		return nil, nil, fmt.Errorf("%s is not an object in object storage", c.Path)
	}
	return c.rem.download(ctx, c.Path, dir)
}

// CandidateSet is what the backup rules hold for one instance.
type CandidateSet struct {
	// ByComponent lists each rule's candidates, newest first, by the
	// component the rule backs up (rules in layout order).
	ByComponent map[string][]Candidate
	// Problems are failed checks not tied to one candidate: directories
	// that could not be read, files another name can claim too.
	Problems map[string][]CheckResult
}

// ContentPath is where the candidate's content is read from: Content,
// or Path.
func (c Candidate) ContentPath() string {
	if c.Content != "" {
		return c.Content
	}
	return c.Path
}

// Candidates lists, without reading them, the backup files each rule of
// the layout credits to instance name, newest first, with the same
// ownership rules as Verify: every instance present on the host, the
// names under opts.ArchiveDir, opts.KnownNames and name itself are known
// names, and a file another known name can claim too, or reached through
// a symbolic link, is credited to none (a Problem). name need not be
// present on the host.
func Candidates(ctx context.Context, l *instance.Layout, name string, opts Options) (*CandidateSet, error) {
	if err := l.ValidateName(name); err != nil {
		return nil, err
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	disc := opts.Discovery
	disc.SkipSizes = true // only the names present matter here
	all, err := l.Discover(ctx, disc)
	if err != nil {
		return nil, fmt.Errorf("discover instances: %w", err)
	}
	deleted, err := archivedNames(ctx, l, opts.ArchiveDir)
	if err != nil {
		return nil, err
	}
	var present []string
	for _, i := range all {
		present = append(present, i.Name)
	}
	own := findOwnersIn(ctx, l, newRemotes(opts.S3), present, append(append(slices.Clone(opts.KnownNames), deleted...), name))
	return candidateSet(l, own, name, opts.Now), nil
}

func candidateSet(l *instance.Layout, own *owners, name string, now time.Time) *CandidateSet {
	set := &CandidateSet{ByComponent: map[string][]Candidate{}, Problems: map[string][]CheckResult{}}
	for ri, r := range l.Backups {
		files, ambiguous := own.certainFilesOf(ri, name)
		st := scanRule(r, name, nil, ambiguous, own.unreadableFor(l, ri, name), now)
		for _, c := range st.checks {
			// A rule with no file is no problem here (the caller says "no
			// backup found"); a place that could not be listed is: its
			// backups may be there.
			_, unreadable := c.Finding.(*UnreadableError)
			if c.Status == StatusFailed && (c.Check != CheckPresent || unreadable) {
				set.Problems[r.Component] = append(set.Problems[r.Component], c)
			}
		}
		var cands []Candidate
		for _, f := range files {
			c := Candidate{Rule: r, Path: f.path, Size: f.size, MTime: f.mtime, rem: f.rem}
			if f.mtime.After(now.Add(clockSkew)) {
				c.Refused = append(c.Refused, bad(CheckResult{Component: r.Component, Rule: r.Path, File: f.path, Check: CheckFresh},
					StatusFailed, &FutureError{Path: f.path, MTime: f.mtime, Now: now, Tolerance: clockSkew}))
			}
			cands = append(cands, c)
		}
		sort.SliceStable(cands, func(i, j int) bool {
			if !cands[i].MTime.Equal(cands[j].MTime) {
				return cands[i].MTime.After(cands[j].MTime)
			}
			return cands[i].Path > cands[j].Path
		})
		set.ByComponent[r.Component] = append(set.ByComponent[r.Component], cands...)
	}
	return set
}

// Judge reads one candidate and returns every check it fails that
// Verify would fail on it as a newest backup, nil when it passes them
// all: owner (a pg_custom dump naming another database than database),
// size (empty, below min_size), shrink (against older, the next older
// file of the same rule, when given), checksum (sidecar), format (read
// to its end, structure complete) and data (a dump without table data
// when older had data). Freshness is no refusal: an old backup is still
// the newest good one; the caller reports its age.
func Judge(ctx context.Context, c Candidate, older *Candidate, database string) ([]CheckResult, error) {
	failed, foreign, err := judgeMeta(ctx, c, older, database)
	if err != nil || foreign {
		// A dump of another database is not read further.
		return failed, err
	}
	more, _, err := JudgeContent(ctx, c, older, database, nil)
	return append(failed, more...), err
}

// JudgeMeta makes the checks of Judge that do not read the content
// (refusals before reading, size, shrink, and the database a pg_custom
// dump's header names): a candidate that fails one is refused without
// being read; one that passes them all is then judged by JudgeContent.
func JudgeMeta(ctx context.Context, c Candidate, older *Candidate, database string) ([]CheckResult, error) {
	failed, _, err := judgeMeta(ctx, c, older, database)
	return failed, err
}

// judgeMeta is JudgeMeta; foreign says the dump's header names another
// database.
func judgeMeta(ctx context.Context, c Candidate, older *Candidate, database string) (failed []CheckResult, foreign bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	r := c.Rule
	base := CheckResult{Component: r.Component, Rule: r.Path, File: c.Path}
	failed = slices.Clone(c.Refused)
	if c.Size == 0 || c.Size < r.MinSize {
		failed = append(failed, bad(withCheck(base, CheckSize), StatusFailed, &TooSmallError{Path: c.Path, Size: c.Size, Min: r.MinSize}))
	}
	if r.MaxShrink > 0 && older != nil && float64(c.Size) < r.MaxShrink*float64(older.Size) {
		failed = append(failed, bad(withCheck(base, CheckShrink), StatusFailed, &ShrinkError{Path: c.Path,
			Previous: older.Path, Size: c.Size, PreviousSize: older.Size, Min: r.MaxShrink}))
	}
	if database != "" && (r.Format == "pg_custom" || r.Format == "any") {
		if db, ok := dumpDatabase(ctx, c.rem, c.ContentPath()); ok && db != database {
			failed = append(failed, bad(withCheck(base, CheckOwner), StatusFailed, &DatabaseMismatchError{Path: c.Path,
				Rule: ruleLabel(r), Want: database, Got: db}))
			foreign = true
		}
	}
	return failed, foreign, nil
}

// JudgeContent makes the checks of Judge that read the content, in one
// read: checksum (sidecar), format (read to its end, structure
// complete), the database the whole dump names, and data (a dump without
// table data when older had data).
//
// With st.Tar and a tar, tar_gz or tar_zst candidate, st.Tar reads the
// tar stream in place of the format check's own walk (a restore extracts
// it into its staging while it is checked): the stream is then still read
// to its end (the compression's own checksum, the sidecar's sha256). When
// st.Tar fails for its own reasons (not the stream's), walkErr is that
// error and the checks are not complete: failed holds nothing then, and
// the candidate is judged by neither verdict. With st.PGRestore, see
// Staging.
func JudgeContent(ctx context.Context, c Candidate, older *Candidate, database string, st *Staging) (failed []CheckResult, walkErr error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	r := c.Rule
	base := CheckResult{Component: r.Component, Rule: r.Path, File: c.Path}
	if st != nil && st.Tar != nil {
		switch r.Format {
		case "tar", "tar_gz", "tar_zst":
		default:
			s := *st
			s.Tar = nil
			st = &s
		}
	}
	res, err := checkFileWalk(ctx, c.rem, c.Path, c.ContentPath(), r.Format, r.Checksum == "sha256_sidecar", st)
	if res.walkErr != nil {
		return nil, res.walkErr, nil
	}
	if err != nil {
		res.checked = true
		res.format = &FormatError{Path: c.Path, Format: r.Format, Msg: "cannot be read: " + err.Error()}
	}
	if res.checksum != nil {
		failed = append(failed, bad(withCheck(base, CheckChecksum), StatusFailed, res.checksum))
	}
	if res.format != nil {
		failed = append(failed, bad(withCheck(base, CheckFormat), StatusFailed, res.format))
	}
	if database != "" && res.database != "" && res.database != database {
		failed = append(failed, bad(withCheck(base, CheckOwner), StatusFailed, &DatabaseMismatchError{Path: c.Path,
			Rule: ruleLabel(r), Want: database, Got: res.database}))
	}
	if res.data == dataNone && older != nil {
		if pr, err := checkBackup(ctx, older.rem, older.Path, r.Format, false); err == nil && pr.data == dataSome {
			failed = append(failed, bad(withCheck(base, CheckData), StatusFailed, &NoDataError{Path: c.Path, Rule: ruleLabel(r),
				Why: fmt.Sprintf("the previous dump %s had table data", older.Path)}))
		}
	}
	return failed, nil, nil
}

// Reasons joins the details of failed checks into one line.
func Reasons(failed []CheckResult) string {
	var out []string
	for _, c := range failed {
		out = append(out, c.Check+": "+c.Detail)
	}
	return strings.Join(out, "; ")
}

// OpenPlainSQL opens a plain SQL backup, compressed with gzip or zstd or
// not, through the guard that refuses what a dump never holds (the
// reader backup_verify's test restores use); done closes it and reports
// the guard's refusal once the reader was consumed.
func OpenPlainSQL(file string) (r io.Reader, done func() error, err error) { return plainSQL(file) }

// BackupOrphans lists the backup files no present instance owns, by name
// and component, with the same ownership rules as Verify's orphans: a
// name that is certain (one candidate) or known (opts.ArchiveDir,
// opts.KnownNames) owns its files; a file whose name is not certain is
// listed under "a or b", never credited to either.
func BackupOrphans(ctx context.Context, l *instance.Layout, opts Options) ([]Orphan, error) {
	disc := opts.Discovery
	disc.SkipSizes = true // only the names present matter here
	all, err := l.Discover(ctx, disc)
	if err != nil {
		return nil, fmt.Errorf("discover instances: %w", err)
	}
	deleted, err := archivedNames(ctx, l, opts.ArchiveDir)
	if err != nil {
		return nil, err
	}
	var present []string
	for _, i := range all {
		present = append(present, i.Name)
	}
	return findOwnersIn(ctx, l, newRemotes(opts.S3), present, append(slices.Clone(opts.KnownNames), deleted...)).orphans(l), nil
}
