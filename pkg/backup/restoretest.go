package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/atomicfile"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// ScratchPrefix starts the name of every scratch database of a test
// restore; nothing else is ever dropped by backup verification.
const ScratchPrefix = "fleetsafe_verify_"

// restoreCandidate is an instance whose newest database dump can be
// test-restored.
type restoreCandidate struct {
	inst  *instance.Instance
	state *ruleState
	kind  kind.RestoreTester
}

// restoreState remembers the last test restore of each instance.
type restoreState struct {
	LastRestore map[string]time.Time `json:"last_restore"`
}

func loadState(path string) (*restoreState, error) {
	st := &restoreState{LastRestore: map[string]time.Time{}}
	if path == "" {
		return st, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("state file %s: %w (remove it to start the rotation over)", path, err)
	}
	if st.LastRestore == nil {
		st.LastRestore = map[string]time.Time{}
	}
	return st, nil
}

func (s *restoreState) save(path string) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	atomicfile.RemoveStale(path, staleTemp)
	return nil
}

// restoreTests restores the newest dump of up to opts.RestoreTest
// instances, those tested longest ago first, into scratch databases.
func restoreTests(ctx context.Context, l *instance.Layout, insts []*instance.Instance, states [][]*ruleState, opts Options, rep *Report) error {
	var cands []restoreCandidate
	for i, inst := range insts {
		for _, st := range states[i] {
			c, ok := l.Component(st.rule.Component)
			if !ok {
				continue
			}
			k, _ := c.Kind()
			rt, ok := k.(kind.RestoreTester)
			if !ok || !slices.Contains(rt.TestFormats(), st.rule.Format) {
				continue
			}
			if newest, found := st.newest(); !found || failedOn(st, newest.path, CheckFormat, CheckChecksum, CheckOwner) {
				st.checks = append(st.checks, skipped(CheckResult{Component: st.rule.Component, Rule: st.rule.Path, Check: CheckRestore},
					"no sound dump to restore"))
				continue
			}
			cands = append(cands, restoreCandidate{inst: inst, state: st, kind: rt})
		}
	}
	mem, err := loadState(opts.StateFile)
	if err != nil {
		return err
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := mem.LastRestore[cands[i].inst.Name], mem.LastRestore[cands[j].inst.Name]
		if !a.Equal(b) {
			return a.Before(b)
		}
		return cands[i].inst.Name < cands[j].inst.Name
	})
	chosen := map[string]bool{}
	for _, c := range cands {
		if len(chosen) >= opts.RestoreTest && !chosen[c.inst.Name] {
			c.state.checks = append(c.state.checks, skipped(CheckResult{Component: c.state.rule.Component, Rule: c.state.rule.Path,
				Check: CheckRestore}, fmt.Sprintf("not chosen this run (restore_test: %d, rotating)", opts.RestoreTest)))
			continue
		}
		chosen[c.inst.Name] = true
		c.state.checks = append(c.state.checks, testRestore(ctx, opts.Discovery.Env(), opts.ArchiveDir, c))
		mem.LastRestore[c.inst.Name] = opts.Now.UTC()
	}
	if err := mem.save(opts.StateFile); err != nil {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("restore rotation not remembered: %v", err))
	}
	return nil
}

// failedOn reports whether one of the checks failed on file.
func failedOn(st *ruleState, file string, checks ...string) bool {
	for _, c := range st.checks {
		for _, name := range checks {
			if c.Check == name && c.Status == StatusFailed && c.File == file {
				return true
			}
		}
	}
	return false
}

// testRestore restores one backup into a scratch place of its kind
// (kind.RestoreTester), compares its tables and row counts with the live
// component, and lets the kind remove the scratch place whatever happens.
func testRestore(ctx context.Context, env kind.Env, archiveDir string, c restoreCandidate) CheckResult {
	newest, _ := c.state.newest()
	res := CheckResult{Component: c.state.rule.Component, Rule: c.state.rule.Path, File: newest.path, Check: CheckRestore}
	fail := func(format string, args ...any) CheckResult {
		return bad(res, StatusFailed, &RestoreError{Path: newest.path, Msg: fmt.Sprintf(format, args...)})
	}
	file := newest.path
	if isRemote(file) {
		// pg_restore and the dump readers take a file: the object is
		// copied to a temporary file, removed after.
		f, remove, err := newest.rem.download(ctx, file, "")
		if err != nil {
			return fail("%v", err)
		}
		defer remove()
		file = f.Name()
	}
	got, err := c.kind.TestRestore(ctx, env, kind.Backup{Format: c.state.rule.Format, File: file,
		Plain: func() (io.Reader, func() error, error) { return plainSQL(file) }, Scratch: testHookScratch})
	if err != nil {
		return fail("%v", err)
	}
	if testHookAfterRestore != nil {
		testHookAfterRestore(c.inst.Name)
	}
	live, _ := c.inst.State(c.state.rule.Component)
	if !live.Present {
		return ok(res, fmt.Sprintf("restored %d tables; no live database to compare with", len(got)))
	}
	want, err := c.kind.LiveCounts(ctx, env, live.Locator)
	if err != nil {
		// The live database may have been dropped, renamed or closed
		// since discovery (a soft delete quarantines it): say so, rather
		// than call a sound backup a failed restore.
		if why, cause := goneWhy(ctx, env, c.kind, live.Locator, archiveDir, c.inst.Name); why != "" {
			return bad(res, StatusWarning, &GoneError{Path: newest.path, Database: live.Locator, Why: why, Cause: cause})
		}
		return fail("count rows of live database %s: %v", live.Locator, err)
	}
	return compareRestored(res, got, want)
}

// compareRestored judges a scratch restore of res.File by the row counts
// of its tables (got) against the live database's (want): failed when a
// table of the live database is missing from the restore or when the
// restore holds no row at all while the live database has rows, a
// warning when counts differ (the live database changed since the
// backup), else ok.
func compareRestored(res CheckResult, got, want map[string]int64) CheckResult {
	var missing, drift []string
	for t, n := range want {
		g, found := got[t]
		switch {
		case !found:
			missing = append(missing, t)
		case g != n:
			drift = append(drift, fmt.Sprintf("%s %d rows (live %d)", t, g, n))
		}
	}
	sort.Strings(missing)
	sort.Strings(drift)
	if len(missing) > 0 {
		return bad(res, StatusFailed, &RestoreError{Path: res.File,
			Msg: "tables of the live database missing from the backup: " + strings.Join(missing, ", ")})
	}
	// No row at all in the restore while the live database has rows: a
	// backup of the structure alone (rows filtered out, data left out),
	// the same loss the data check fails for a pg_dump with no table
	// data. Drift is for a database that changed, not one emptied.
	var gotRows, liveRows int64
	var liveTable string
	for _, g := range got {
		gotRows += g
	}
	for t, n := range want {
		if n > 0 && (liveTable == "" || t < liveTable) {
			liveTable = t
		}
		liveRows += n
	}
	if gotRows == 0 && liveRows > 0 {
		return bad(res, StatusFailed, &RestoreError{Path: res.File,
			Msg: fmt.Sprintf("restored, but the backup holds no row in any table while the live database has %d (in %s at least): its data is missing", liveRows, liveTable)})
	}
	if len(drift) > 0 {
		return bad(res, StatusWarning, &RestoreError{Path: res.File,
			Msg: "restored, but row counts differ from the live database (it changed since the backup?): " + strings.Join(drift, "; ")})
	}
	return ok(res, fmt.Sprintf("restored %d tables into a scratch database; row counts match the live database", len(got)))
}

// testHookScratch, set by tests only, learns the name of each scratch
// database created, so that a test checks its own scratch databases and
// not those of runs beside it on the same server.
var testHookScratch func(name string)

// testHookAfterRestore, set by tests only, runs after a scratch restore
// and before the comparison with the live database.
var testHookAfterRestore func(name string)

// goneWhy tells why a live database can no longer be read, when it is
// because it went away during the run (dropped or renamed, closed to
// connections), and the soft delete that explains it when a tombstone of
// the instance is under archiveDir. why is "" when the database is still
// there and open.
func goneWhy(ctx context.Context, env kind.Env, k kind.RestoreTester, db, archiveDir, name string) (why, cause string) {
	why = k.Gone(ctx, env, db)
	st, err := store.Open(ctx, archiveDir)
	if archiveDir != "" && err == nil && store.CheckKey(name) == nil {
		var causes []string
		objs, _ := st.List(ctx, name+"/")
		var ts []string
		for _, o := range objs {
			if strings.HasSuffix(o.Key, ".tombstone.json") && !strings.Contains(strings.TrimPrefix(o.Key, name+"/"), "/") {
				ts = append(ts, o.Key)
			}
		}
		if len(ts) > 0 {
			sort.Strings(ts)
			causes = append(causes, fmt.Sprintf("instance %s is being soft-deleted: tombstone %s", name, st.Location(ts[len(ts)-1])))
		}
		if li, ok := st.(store.LockInspector); ok {
			if pid, where, held := li.LockHolder(name); held {
				causes = append(causes, fmt.Sprintf("process %d holds the fleetsafe lock of instance %s (%s)", pid, name, where))
			}
		}
		if len(causes) > 0 && why == "" {
			why = "could not be read"
		}
		cause = strings.Join(causes, "; ")
	}
	return why, cause
}

// plainSQL opens a plain SQL backup, compressed with gzip or zstd or not,
// through the guard that refuses what a dump never holds; done closes it
// and reports the guard's refusal.
func plainSQL(file string) (io.Reader, func() error, error) {
	in, closeFile, err := openMaybeCompressed(file)
	if err != nil {
		return nil, nil, err
	}
	guarded, refused := guardPlainSQL(file, in)
	return guarded, func() error {
		defer closeFile()
		return refused()
	}, nil
}
