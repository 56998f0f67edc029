package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// runModule runs a built module binary with args; kill > 0 sends SIGKILL
// after that long. It returns the decoded result (nil when the process
// was killed before printing one).
func (m *machine) runModule(t *rapid.T, module string, args map[string]any, kill time.Duration, env ...string) (map[string]any, error) {
	data, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(m.f.root, "args-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(filepath.Join(m.modules, module), f.Name())
	cmd.Env = append(os.Environ(), "FLEETSAFE_SYSTEMD_DIR="+m.f.options().SystemdDir)
	cmd.Env = append(cmd.Env, env...)
	out := &safeBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", module, err)
	}
	// A module that hangs is killed after five minutes and reported (a
	// run takes seconds; many times that on a loaded machine, under the
	// race detector's load on the other tests).
	hung := false
	if kill <= 0 {
		kill = 5 * time.Minute
		hung = true
	}
	start := time.Now()
	timer := time.AfterFunc(kill, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
	werr := cmd.Wait()
	fired := !timer.Stop()
	if fired && hung {
		t.Fatalf("%s %v: no answer after %v: a hang", module, args, kill)
	}
	switch {
	case hung:
		runTimes.add(module, time.Since(start))
	case fired && cmd.ProcessState != nil && !cmd.ProcessState.Exited():
		timed("SIGKILL landed: "+module, time.Now())
	default:
		timed("SIGKILL too late: "+module, time.Now())
	}
	var res map[string]any
	_ = json.Unmarshal(out.Bytes(), &res)
	return res, werr
}

// runTimes keeps, per module, the duration of its recent uninterrupted
// runs, so that a SIGKILL can be drawn at a random instant within a run
// rather than after its end.
var runTimes = &moduleTimes{avg: map[string]time.Duration{}}

type moduleTimes struct {
	sync.Mutex
	avg map[string]time.Duration
}

func (mt *moduleTimes) add(module string, d time.Duration) {
	mt.Lock()
	defer mt.Unlock()
	if old, ok := mt.avg[module]; ok {
		d = (3*old + d) / 4
	}
	mt.avg[module] = d
}

// killInstant draws when to kill a run of module: a random fraction of its
// usual duration, from 0 to 110% (one kill in eleven lands after the end,
// where the re-run must find a finished run).
func killInstant(t *rapid.T, module string) time.Duration {
	runTimes.Lock()
	usual, ok := runTimes.avg[module]
	runTimes.Unlock()
	if !ok {
		usual = 300 * time.Millisecond
	}
	permille := rapid.IntRange(1, 1100).Draw(t, "kill_at_permille_of_a_run")
	return max(time.Millisecond, usual*time.Duration(permille)/1000)
}

type safeBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *safeBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// CrashDelete runs the real instance_soft_delete binary, kills it with
// SIGKILL at a random instant, then runs it again to completion: the end
// state must be the one of an uninterrupted run (one tombstone, one
// archive, every present component in quarantine).
func (m *machine) CrashDelete(t *rapid.T) {
	if m.modules == "" {
		t.Skip("no module binaries")
	}
	name := m.drawName(t)
	kill := killInstant(t, "instance_soft_delete")
	s := m.model[name]
	present := presentComponents(s)
	m.nextSecond(name)
	args := map[string]any{"layout_file": m.f.layoutFile, "name": name, "archive_dir": m.archives, "reason": "model crash"}
	first, ferr := m.runModule(t, "instance_soft_delete", args, kill)
	res, err := m.runModule(t, "instance_soft_delete", args, 0)
	if err != nil || res == nil || res["failed"] == true {
		t.Fatalf("instance_soft_delete %s after a SIGKILL at %v (first run: %v %v): the re-run failed: %v %v", name, kill, ferr, first, err, res)
	}
	s.dirMade = true
	m.learnAbandoned(t, name)
	news := m.newTombstones(t, name)
	if len(present) == 0 {
		if len(news) != 0 {
			t.Fatalf("instance_soft_delete %s (not live) wrote %d tombstones", name, len(news))
		}
		return
	}
	if len(news) != 1 {
		t.Fatalf("instance_soft_delete %s, SIGKILL at %v then a re-run: %d new tombstones, want 1", name, kill, len(news))
	}
	d := m.recordDeletion(t, name, news[0], present)
	m.orphanArchives(t, name, fmt.Sprintf("instance_soft_delete %s was killed at %v and re-run to completion", name, kill), nil)
	if want := 30 * 24 * time.Hour; d.purgeAfter.Sub(news[0].DeletedAt) != want {
		t.Fatalf("instance_soft_delete %s: purge_after is not deleted_at + 30 days", name)
	}
	if _, err := archive.VerifyArchive(m.ctx, d.archive); err != nil {
		t.Fatalf("instance_soft_delete %s after a crash: the tombstone's archive does not verify: %v", name, err)
	}
}

// ConcurrentDelete runs two deletions of one instance at once, through
// the library: one deletes, the other is refused or finds it deleted;
// one tombstone, one archive.
func (m *machine) ConcurrentDelete(t *rapid.T) {
	name := m.drawName(t)
	s := m.model[name]
	present := presentComponents(s)
	m.nextSecond(name)
	type outcome struct {
		res *softdelete.Result
		err error
	}
	var out [2]outcome
	// The second run is, one time in two, the instance_soft_delete binary:
	// the lock must hold between processes too.
	viaModule := m.modules != "" && rapid.Bool().Draw(t, "second run is the module")
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 && viaModule {
				out[i].res, out[i].err = m.moduleDelete(t, name, 30)
				return
			}
			out[i].res, out[i].err = softdelete.Delete(m.ctx, m.f.layout, softdelete.Request{Name: name, ArchiveDir: m.archives,
				Reason: "model concurrent", RetentionDays: 30, Options: m.f.options()})
		}()
	}
	wg.Wait()
	s.dirMade = true
	m.learnAbandoned(t, name)
	changed := 0
	for i, o := range out {
		var re *softdelete.RefusedError
		switch {
		case o.err == nil:
			if o.res.Changed {
				changed++
			}
		case errors.As(o.err, &re):
		default:
			t.Fatalf("concurrent delete %s, run %d: %v", name, i, o.err)
		}
	}
	news := m.newTombstones(t, name)
	if len(present) == 0 {
		if changed != 0 || len(news) != 0 {
			t.Fatalf("concurrent delete %s (not live): %d runs changed something, %d tombstones", name, changed, len(news))
		}
		return
	}
	if changed != 1 || len(news) != 1 {
		t.Fatalf("concurrent delete %s: %d runs report a change and %d tombstones were written; want exactly 1 and 1 (results %+v / %v, %+v / %v)",
			name, changed, len(news), out[0].res, out[0].err, out[1].res, out[1].err)
	}
	m.recordDeletion(t, name, news[0], present)
}

// moduleDelete runs the instance_soft_delete binary to completion and
// returns its outcome as the library's: a refusal (the module's message
// says "refusing to delete") as a *softdelete.RefusedError, any other
// failure as an error, else a result that says whether it changed
// anything. Safe to call from another goroutine (no rapid draws, no
// t.Fatal).
func (m *machine) moduleDelete(t *rapid.T, name string, retention int) (*softdelete.Result, error) {
	args := map[string]any{"layout_file": m.f.layoutFile, "name": name, "archive_dir": m.archives, "reason": "model concurrent", "retention_days": retention}
	data, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(m.f.root, "args-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		return nil, err
	}
	f.Close()
	cmd := exec.Command(filepath.Join(m.modules, "instance_soft_delete"), f.Name())
	cmd.Env = append(os.Environ(), "FLEETSAFE_SYSTEMD_DIR="+m.f.options().SystemdDir)
	outb, werr := cmd.Output()
	var res map[string]any
	if err := json.Unmarshal(outb, &res); err != nil {
		return nil, fmt.Errorf("instance_soft_delete %s: no result (%v): %s", name, werr, outb)
	}
	changed, _ := res["changed"].(bool)
	if res["failed"] == true {
		msg, _ := res["msg"].(string)
		if strings.Contains(msg, "refusing to delete") && !changed {
			return nil, &softdelete.RefusedError{Name: name, Reason: "module: " + msg}
		}
		return nil, fmt.Errorf("instance_soft_delete %s failed (changed %t): %s", name, changed, msg)
	}
	return &softdelete.Result{Changed: changed}, nil
}

// ConcurrentMixed runs, at the same time, a soft delete of one name and a
// restore or a purge of another, through the library: runs on different
// instances share the archive directory, its trash and the server, and
// must each end as if alone.
func (m *machine) ConcurrentMixed(t *rapid.T) {
	x := m.drawName(t)
	var others []string
	for _, n := range m.names {
		if n != x {
			others = append(others, n)
		}
	}
	y := rapid.SampledFrom(others).Draw(t, "other name")
	retention := rapid.IntRange(1, 40).Draw(t, "retention_days")
	m.nextSecond(x)
	var (
		wg     sync.WaitGroup
		delRes *softdelete.Result
		delErr error
		other  func()
		check  func()
	)
	if rapid.Bool().Draw(t, "restore, not purge") {
		name, source, comps, force := m.drawRestoreOf(t, y, true)
		p := m.planRestore(name, comps, force)
		var out restoreOutcome
		other = func() {
			res, err := softdelete.Restore(m.ctx, m.f.layout, softdelete.RestoreRequest{Name: name, ArchiveDir: m.archives,
				Source: source, Components: comps, Force: force, Options: m.f.options()})
			out = restoreOutcome{err: err}
			if res != nil {
				out.source, out.restored, out.changed, out.sources = res.Source, res.Restored, res.Changed, res.Sources
			}
		}
		check = func() { m.expectRestore(t, name, source, comps, force, p, out) }
	} else {
		req := m.drawPurge(t)
		req.Name = y
		var purged []softdelete.Purged
		var err error
		other = func() { purged, err = softdelete.Purge(m.ctx, req) }
		check = func() { m.expectPurge(t, req, purged, err, false) }
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		delRes, delErr = softdelete.Delete(m.ctx, m.f.layout, softdelete.Request{Name: x, ArchiveDir: m.archives,
			Reason: "model concurrent mixed", RequestedBy: "rapid", RetentionDays: retention, Options: m.f.options()})
	}()
	go func() {
		defer wg.Done()
		other()
	}()
	wg.Wait()
	m.afterDelete(t, x, retention, delRes, delErr)
	check()
}

// FullDisk soft-deletes with the archive directory's filesystem (a small
// tmpfs) filled up to a random number of free bytes. Either the deletion
// completes as usual, or it fails and then: nothing of the instance moved
// and no archive is left where restore would find it, or it left a
// tombstone, and a re-run once space is back completes it.
func (m *machine) FullDisk(t *rapid.T) {
	if m.fullDisk == "" {
		t.Skip("archive_dir is not on a tmpfs (needs root)")
	}
	name := m.drawName(t)
	free := rapid.IntRange(0, 64).Draw(t, "free_kib") * 1024
	s := m.model[name]
	present := presentComponents(s)
	before := m.observe(t, name)
	ballast := filepath.Join(m.fullDisk, "ballast")
	fillTo(t, m.fullDisk, ballast, int64(free))
	m.nextSecond(name)
	res, err := softdelete.Delete(m.ctx, m.f.layout, softdelete.Request{Name: name, ArchiveDir: m.archives,
		Reason: "model full disk", RetentionDays: 30, Options: m.f.options()})
	if rerr := os.Remove(ballast); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil {
		m.afterDelete(t, name, 30, res, err)
		return
	}
	timed("delete failed on a full disk", time.Now())
	s.dirMade = true
	m.learnAbandoned(t, name)
	if len(present) == 0 {
		t.Fatalf("delete %s (not live) with %d bytes free: %v", name, free, err)
	}
	news := m.newTombstones(t, name)
	if len(news) == 0 {
		if got := m.observe(t, name); !sameDigests(got, before) {
			t.Fatalf("delete %s failed with %d bytes free (%v) and left no tombstone, but the instance changed:\n  was %s\n  now %s", name, free, err, describe(before), describe(got))
		}
		m.orphanArchives(t, name, fmt.Sprintf("delete %s failed with %d bytes free (%v) and left no tombstone", name, free, err), err)
		return
	}
	// A tombstone was written: the deletion is under way and a re-run
	// must finish it.
	res, err = softdelete.Delete(m.ctx, m.f.layout, softdelete.Request{Name: name, ArchiveDir: m.archives,
		Reason: "model full disk", RetentionDays: 30, Options: m.f.options()})
	if err != nil {
		t.Fatalf("delete %s failed with %d bytes free after writing its tombstone, and the re-run with space back fails too: %v", name, free, err)
	}
	m.learnAbandoned(t, name)
	news = m.newTombstones(t, name)
	if len(news) != 1 {
		t.Fatalf("delete %s: %d new tombstones after a full disk and a re-run, want 1", name, len(news))
	}
	m.recordDeletion(t, name, news[0], present)
	_ = res
}

// FullDiskRestore restores with the instances' filesystem (the fleet's
// tmpfs) filled up to a random number of free bytes. Either the restore
// succeeds as predicted, or it fails and every component is then either
// as it was before (absent) or complete, never half-written; a re-run
// once space is back ends as an uninterrupted restore would.
func (m *machine) FullDiskRestore(t *rapid.T) {
	if !m.f.tmpfs {
		t.Skip("the fleet is not on a tmpfs (needs root)")
	}
	name, source, comps, _ := m.drawRestore(t, false)
	free := rapid.IntRange(0, 16).Draw(t, "free_kib") * 1024
	p := m.planRestore(name, comps, false)
	before := m.observe(t, name)
	ballast := filepath.Join(m.f.root, "ballast")
	fillTo(t, m.f.root, ballast, int64(free))
	req := softdelete.RestoreRequest{Name: name, ArchiveDir: m.archives, Source: source, Components: comps, Options: m.f.options()}
	res, err := softdelete.Restore(m.ctx, m.f.layout, req)
	if rerr := os.Remove(ballast); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		t.Fatal(rerr)
	}
	s := m.model[name]
	picks, why := predictRestore(s, source, p.want)
	if err == nil || why != "" || len(p.want) == 0 || len(s.deletions) == 0 {
		// Success, or what the model expects whatever the space.
		out := restoreOutcome{err: err}
		if res != nil {
			out.source, out.restored, out.changed, out.sources = res.Source, res.Restored, res.Changed, res.Sources
		}
		m.expectRestore(t, name, source, comps, false, p, out)
		return
	}
	// Failed for want of space: each component absent as before, or
	// complete as the model predicts it, never partial.
	timed("restore failed on a full disk", time.Now())
	got := m.observe(t, name)
	for _, c := range componentOrder {
		g, present := got[c]
		b, was := before[c]
		switch {
		case present == was && g == b:
		case present && slices.Contains(p.want, c) && g == picks[c].d.archived[c]:
		default:
			t.Fatalf("restore %s (source %q, components %v) failed with %d bytes free (%v) and left component %s neither as it was (%s) nor complete: %s",
				name, source, comps, free, err, c, describe(before), describe(got))
		}
	}
	res, err = softdelete.Restore(m.ctx, m.f.layout, req)
	out := restoreOutcome{err: err, rerun: true}
	if res != nil {
		out.source, out.restored, out.changed, out.sources = res.Source, res.Restored, res.Changed, res.Sources
	}
	m.expectRestore(t, name, source, comps, false, p, out)
}

// orphanArchives looks, after a deletion step, for archives of name that
// neither a deletion nor an abandoned record owns. After a run that
// completed (a re-run after a crash) there must be none: the run records
// every archive it finds without a tombstone. After a deletion that
// failed (failed says how), an archive left without a tombstone must be
// complete and named in the error (journal first: an archive without a
// tombstone is completed or reported); the model then keeps it as an
// orphan: restore never takes it by itself, purge counts it, and the next
// deletion records it as abandoned.
func (m *machine) orphanArchives(t *rapid.T, name, what string, failed error) {
	s := m.model[name]
	files, _ := filepath.Glob(filepath.Join(m.archives, name, "*.tar.zst"))
	for _, f := range files {
		if slices.ContainsFunc(s.deletions, func(d *deletion) bool { return d.archive == f }) ||
			slices.ContainsFunc(s.abandoned, func(a *abandonedRec) bool { return a.archive == f }) ||
			slices.Contains(s.orphans, f) {
			continue
		}
		if failed == nil {
			t.Fatalf("%s, but left the archive %s without a tombstone or an abandoned record", what, filepath.Base(f))
		}
		if _, err := archive.VerifyArchive(m.ctx, f); err != nil {
			t.Fatalf("%s, and left the archive %s without a tombstone, incomplete: %v", what, filepath.Base(f), err)
		}
		if !strings.Contains(failed.Error(), filepath.Base(f)) {
			openBug(t, "orphan-archive", "%s, and left the complete archive %s without a tombstone; the error does not name it", what, filepath.Base(f))
		}
		s.orphans = append(s.orphans, f)
	}
}

// fillTo writes ballast until the filesystem of dir has at most free bytes
// left.
func fillTo(t *rapid.T, dir, ballast string, free int64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	size := avail - free
	if size <= 0 {
		return
	}
	f, err := os.Create(ballast)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for size > 0 {
		n := int64(len(chunk))
		if n > size {
			n = size
		}
		if _, err := f.Write(chunk[:n]); err != nil {
			break // full
		}
		size -= n
	}
}

// mountArchives puts the archive directory on a tmpfs of its own, so that
// FullDisk can fill it; the tmpfs is unmounted at the end of the check.
func mountArchives(t *rapid.T, m *machine) {
	if os.Geteuid() != 0 {
		return
	}
	if err := os.MkdirAll(m.archives, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", m.archives).CombinedOutput(); err != nil {
		t.Logf("no tmpfs for the archive directory: %v: %s", err, out)
		return
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", m.archives).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", m.archives, err, out)
		}
	})
	m.fullDisk = m.archives
}

// CrashRestore runs the real instance_restore binary, kills it with
// SIGKILL at a random instant, then runs it again to completion: the end
// state must be the one of an uninterrupted restore (each component
// absent or complete, invariant 10).
func (m *machine) CrashRestore(t *rapid.T) {
	if m.modules == "" {
		t.Skip("no module binaries")
	}
	m.crashRestoreOf(t, m.drawName(t))
}

// crashRestoreOf is CrashRestore of one name.
func (m *machine) crashRestoreOf(t *rapid.T, name string) {
	_, source, comps, _ := m.drawRestoreOf(t, name, false)
	kill := killInstant(t, "instance_restore")
	p := m.planRestore(name, comps, false)
	args := map[string]any{"layout_file": m.f.layoutFile, "name": name, "archive_dir": m.archives}
	if source != "" {
		args["source"] = source
	}
	if comps != nil {
		args["components"] = comps
	}
	first, ferr := m.runModule(t, "instance_restore", args, kill)
	res, err := m.runModule(t, "instance_restore", args, 0)
	out := restoreOutcome{rerun: true}
	if err != nil || res == nil || res["failed"] == true {
		out.err = fmt.Errorf("instance_restore re-run after a SIGKILL at %v (first run: %v %v): %v %v", kill, ferr, first, err, res)
	}
	m.expectRestore(t, name, source, comps, false, p, out)
}
