package model

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// deletion is what the model knows of one tombstone: a soft deletion, or
// the components a forced restore moved aside.
type deletion struct {
	seq       int
	id        string
	tombstone string
	archive   string            // "" for a forced restore's tombstone
	archived  map[string]string // component -> digest when it was moved
	moves     map[string]softdelete.QuarantineMove
	held      map[string]bool // component -> still in quarantine
	// tampered marks a quarantined component someone changed (a table
	// planted in a MariaDB quarantine): restore must not take it back.
	tampered map[string]bool
	// quarantined is, for a MariaDB quarantine, its table digest when
	// the deletion was recorded: it must not change while held.
	quarantined map[string]string
	purgeAfter  time.Time
	purged      bool // purge ran over it
	archiveGC   bool // its archive was purged (keep_last)
	// restoredState is the tombstone's state restored (see restored).
	restoredState bool
}

// state is what the model expects of one instance name.
type state struct {
	digest    map[string]string // component -> digest; absent components are missing
	deletions []*deletion       // oldest first
	abandoned []*abandonedRec   // records of interrupted attempts, oldest first
	orphans   []string          // complete archives a failed deletion left without a tombstone
	dirMade   bool              // <archive_dir>/<name> exists
}

// abandonedRec is a tombstone in state abandoned: an attempt to delete
// that was interrupted before anything moved (a SIGKILL, a full disk) and
// that a later run recorded (softdelete.go, settleInterrupted). It is no
// deletion: restore passes over it. An archive the attempt left complete
// is kept as an extra copy and must verify; an incomplete one is removed.
// Which attempts end so depends on the instant of the kill: the model
// learns them from the tombstones after each deletion step.
type abandonedRec struct {
	tombstone  string
	archive    string // "" when its archive was removed or never written
	purgeAfter time.Time
	archiveGC  bool // its archive was purged (keep_last)
}

func (s *state) live() bool { return len(s.digest) > 0 }

func (s *state) latest() *deletion {
	if len(s.deletions) == 0 {
		return nil
	}
	return s.deletions[len(s.deletions)-1]
}

// restored reports whether the deletion's tombstone says restored: set
// by a restore from its quarantine that left nothing there. Outside strict
// mode it mirrors open bug restored-ignores-database: a database left in
// quarantine does not count.
func (d *deletion) restored() bool { return d.restoredState }

func (d *deletion) updateRestored() {
	d.restoredState = true
	for c, h := range d.held {
		if h && (strictBug("restored-ignores-database") || !isDatabase(d.moves[c].Type)) {
			d.restoredState = false
		}
	}
}

type machine struct {
	ctx      context.Context
	admin    *sql.DB // see adminDB
	f        *fleet
	archives string
	modules  string // directory of the built module binaries
	names    []string
	model    map[string]*state
	seq      int
	fullDisk string // archive_dir on a small tmpfs, "" when not mounted
	// lastDeletion is when each name last got a tombstone.
	lastDeletion map[string]time.Time
}

// openBugs lists failures found by these machines that are not fixed
// yet. By default the machine steps around them (and logs when it does),
// so that it keeps looking for others; FLEETSAFE_MODEL_OPEN_BUGS=1 makes
// each a failure again.
var openBugs = map[string]string{
	"orphan-archive": "a deletion that fails after its archive was renamed into place (a full disk at the tombstone) leaves that archive without a tombstone and its error does not name it",
}

func strictOpenBugs() bool { return os.Getenv("FLEETSAFE_MODEL_OPEN_BUGS") == "1" }

// strictBug reports whether open bug id is asserted: FLEETSAFE_MODEL_OPEN_BUGS
// is 1 (all of them) or a comma-separated list of ids.
func strictBug(id string) bool {
	if _, open := openBugs[id]; !open {
		return true // fixed: always asserted
	}
	v := os.Getenv("FLEETSAFE_MODEL_OPEN_BUGS")
	return v == "1" || slices.Contains(strings.Split(v, ","), id)
}

// openBug fails the check when open bug id is asserted, else logs that the
// machine met it.
func openBug(t *rapid.T, id, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if _, open := openBugs[id]; !open {
		t.Fatalf("%s (bug %s, fixed, is back)", msg, id)
	}
	if strictBug(id) {
		t.Fatalf("%s (open bug %s: %s)", msg, id, openBugs[id])
	}
	timed("open bug met: "+id, time.Now()) // counted in the timing table
	t.Logf("met open bug %s: %s", id, msg)
}

// nextSecond waits, unless open bugs are asserted, until the clock has
// left the second of the name's last deletion (open bug same-second).
func (m *machine) nextSecond(name string) {
	if strictBug("same-second") {
		return
	}
	last, ok := m.lastDeletion[name]
	if !ok {
		return
	}
	if wait := last.Truncate(time.Second).Add(time.Second).Sub(time.Now()); wait > 0 {
		time.Sleep(wait + 10*time.Millisecond)
	}
}

func (m *machine) allComponentNames() []string { return componentOrder }

// observe reads the components of one instance as they are on disk and on
// the server.
func (m *machine) observe(t *rapid.T, name string) map[string]string {
	return m.observeIn(t, name, m.databases(t))
}

// myDatabases lists the MariaDB server's databases.
func (m *machine) myDatabases(t *rapid.T) map[string]bool {
	dbs, err := myDatabases(m.ctx, m.f.my)
	if err != nil {
		t.Fatal(err)
	}
	return dbs
}

// adminDB is the machine's connection pool to the postgres database,
// opened once and closed when the check ends.
func (m *machine) adminDB(t *rapid.T) *sql.DB {
	if m.admin == nil {
		admin, err := m.f.pg.Open(m.ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		m.admin = admin
		t.Cleanup(func() { admin.Close() })
	}
	return m.admin
}

// databases lists the server's databases and whether each accepts
// connections.
func (m *machine) databases(t *rapid.T) map[string]bool {
	dbs, err := databases(m.ctx, m.adminDB(t))
	if err != nil {
		t.Fatal(err)
	}
	return dbs
}

// observeIn is observe with the server's databases already listed.
func (m *machine) observeIn(t *rapid.T, name string, dbs map[string]bool) map[string]string {
	out := map[string]string{}
	for _, c := range []string{compConfig, compData, compEnv} {
		d, err := pathDigest(m.f.path(c, name))
		if err != nil {
			t.Fatalf("observe %s %s: %v", name, c, err)
		}
		if d != "" {
			out[c] = d
		}
	}
	if _, err := os.Lstat(m.f.path(compLite, name)); err == nil {
		d, err := sqlitedb.Digest(m.ctx, m.f.path(compLite, name))
		if err != nil {
			t.Fatalf("observe %s sqlite: %v", name, err)
		}
		out[compLite] = d
	}
	if db := m.f.myDatabase(name); m.myDatabases(t)[db] {
		d, err := myDigest(m.ctx, m.f.my, db)
		if err != nil {
			t.Fatalf("observe %s mysql: %v", name, err)
		}
		out[compMy] = d
	}
	if allow, ok := dbs[m.f.database(name)]; ok {
		if !allow {
			out[compDB] = "closed to connections"
		} else {
			d, err := dbDigest(m.ctx, m.f.pg, m.f.database(name))
			if err != nil {
				t.Fatalf("observe %s database: %v", name, err)
			}
			out[compDB] = d
		}
	}
	return out
}

func describe(d map[string]string) string {
	var parts []string
	for _, c := range componentOrder {
		if v, ok := d[c]; ok {
			if len(v) > 12 {
				v = v[:12]
			}
			parts = append(parts, c+"="+v)
		} else {
			parts = append(parts, c+"=absent")
		}
	}
	return strings.Join(parts, " ")
}

func sameDigests(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Check runs after every step: every instance (target or not) is exactly
// as the model says, every quarantined copy is what was moved, every
// archive the model keeps is there and no other, and discovery agrees.
func (m *machine) Check(t *rapid.T) {
	dbs := m.databases(t)
	myDBs := m.myDatabases(t)
	for _, n := range m.names {
		s := m.model[n]
		got := m.observeIn(t, n, dbs)
		if !sameDigests(got, s.digest) {
			t.Fatalf("instance %s is not what the model expects:\n  want %s\n  got  %s", n, describe(s.digest), describe(got))
		}
		for _, d := range s.deletions {
			if _, err := os.Stat(d.tombstone); err != nil {
				t.Fatalf("instance %s: tombstone %s is gone: %v", n, d.tombstone, err)
			}
			if d.archive != "" {
				_, err := os.Stat(d.archive)
				if d.archiveGC != errors.Is(err, os.ErrNotExist) {
					t.Fatalf("instance %s: archive %s: purged by keep_last %t, stat says %v", n, d.archive, d.archiveGC, err)
				}
			}
			for c, mv := range d.moves {
				var present bool
				switch mv.Type {
				case instance.TypePostgreSQL:
					_, present = dbs[mv.To]
				case typeMySQL:
					present = myDBs[mv.To]
					if present && d.held[c] && !d.tampered[c] {
						dg, err := mariadb.TableDigest(m.ctx, m.f.my, mv.To)
						if err != nil {
							t.Fatalf("instance %s: quarantined %s at %s: %v", n, c, mv.To, err)
						}
						if dg != d.quarantined[c] {
							t.Fatalf("instance %s: quarantined %s at %s changed since it was moved", n, c, mv.To)
						}
					}
				default:
					dg, err := pathDigest(mv.To)
					if err != nil {
						t.Fatal(err)
					}
					if mv.Type == typeSQLite && dg != "" {
						// The content, with the -wal moved along.
						if dg, err = sqlitedb.Digest(m.ctx, mv.To); err != nil {
							t.Fatalf("instance %s: quarantined %s at %s: %v", n, c, mv.To, err)
						}
					}
					present = dg != ""
					if present && d.held[c] && dg != d.archived[c] {
						t.Fatalf("instance %s: quarantined %s at %s changed since it was moved", n, c, mv.To)
					}
				}
				if present != d.held[c] {
					t.Fatalf("instance %s deletion %s: component %s in quarantine at %s: model says held=%t, found present=%t (purged=%t, purge_after %s)",
						n, d.id, c, mv.To, d.held[c], present, d.purged, d.purgeAfter.Format(time.RFC3339))
				}
			}
		}
		if s.dirMade {
			files, _ := filepath.Glob(filepath.Join(m.archives, n, "*.tar.zst"))
			var want []string
			for _, d := range s.deletions {
				if d.archive != "" && !d.archiveGC {
					want = append(want, d.archive)
				}
			}
			// An archive an interrupted attempt left complete is kept as
			// an extra copy under its abandoned record, until purge.
			for _, a := range s.abandoned {
				if a.archive != "" && !a.archiveGC {
					want = append(want, a.archive)
				}
			}
			want = append(want, s.orphans...)
			m.checkAbandoned(t, n)
			sort.Strings(files)
			sort.Strings(want)
			if !slices.Equal(files, want) {
				t.Fatalf("instance %s: archives on disk %v, the model expects %v (one per deletion, none left by a crash)", n, base(files), base(want))
			}
		}
	}
	insts, err := m.f.layout.Discover(m.ctx, m.f.options())
	if err != nil {
		t.Fatalf("discover: %v", err)
	}
	var found, want []string
	for _, i := range insts {
		found = append(found, i.Name)
		for _, c := range i.Components {
			_, expected := m.model[i.Name].digest[c.Name]
			if c.Present != expected {
				t.Fatalf("discover: %s component %s present=%t, the model says %t", i.Name, c.Name, c.Present, expected)
			}
		}
	}
	for _, n := range m.names {
		if m.model[n].live() {
			want = append(want, n)
		}
	}
	if !slices.Equal(found, want) {
		t.Fatalf("discover found %v, the model expects %v", found, want)
	}
}

func base(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = filepath.Base(p)
	}
	return out
}

// stateAbandoned is the state the delete branch's journal gives the
// tombstone of an attempt that was interrupted and superseded by a re-run:
// a record, not a deletion (main has no such state).
const stateAbandoned = "abandoned"

// checkAbandoned compares the abandoned records of name on disk with the
// model's: the same tombstones, each still abandoned, none new (only a
// deletion step records them, see learnAbandoned).
func (m *machine) checkAbandoned(t *rapid.T, name string) {
	tss, err := softdelete.Tombstones(filepath.Join(m.archives, name))
	if err != nil {
		t.Fatalf("read tombstones of %s: %v", name, err)
	}
	var found, want []string
	for _, ts := range tss {
		if ts.State == stateAbandoned {
			found = append(found, ts.Path)
		}
	}
	for _, a := range m.model[name].abandoned {
		want = append(want, a.tombstone)
	}
	sort.Strings(found)
	sort.Strings(want)
	if !slices.Equal(found, want) {
		t.Fatalf("instance %s: abandoned records on disk %v, the model knows %v (only a deletion records one, and none goes away)", name, base(found), base(want))
	}
}

// learnAbandoned records the abandoned attempts of name that a deletion
// step reported: the archive of each is either gone, or complete and
// verified (an extra copy), never a partial one kept.
func (m *machine) learnAbandoned(t *rapid.T, name string) {
	tss, err := softdelete.Tombstones(filepath.Join(m.archives, name))
	if err != nil {
		t.Fatalf("read tombstones of %s: %v", name, err)
	}
	s := m.model[name]
	for _, ts := range tss {
		if ts.State != stateAbandoned || slices.ContainsFunc(s.abandoned, func(a *abandonedRec) bool { return a.tombstone == ts.Path }) {
			continue
		}
		if slices.ContainsFunc(s.deletions, func(d *deletion) bool { return d.tombstone == ts.Path }) {
			t.Fatalf("instance %s: the tombstone %s of a completed deletion now says abandoned", name, ts.Path)
		}
		rec := &abandonedRec{tombstone: ts.Path, purgeAfter: ts.PurgeAfter}
		s.orphans = slices.DeleteFunc(s.orphans, func(o string) bool { return o == ts.ArchivePath })
		if ts.ArchivePath != "" {
			if _, err := os.Stat(ts.ArchivePath); err == nil {
				if _, err := archive.VerifyArchive(m.ctx, ts.ArchivePath); err != nil {
					t.Fatalf("instance %s: the archive %s of the abandoned attempt %s is kept but does not verify: %v", name, ts.ArchivePath, ts.ID, err)
				}
				rec.archive = ts.ArchivePath
			}
		}
		s.abandoned = append(s.abandoned, rec)
	}
}

// newTombstones returns the tombstones of an instance that the model does
// not know yet, records of abandoned attempts left out.
func (m *machine) newTombstones(t *rapid.T, name string) []*softdelete.Tombstone {
	tss, err := softdelete.Tombstones(filepath.Join(m.archives, name))
	if err != nil {
		t.Fatalf("read tombstones of %s: %v", name, err)
	}
	var out []*softdelete.Tombstone
	for _, ts := range tss {
		if ts.State == stateAbandoned {
			continue
		}
		if !slices.ContainsFunc(m.model[name].deletions, func(d *deletion) bool { return d.tombstone == ts.Path }) {
			out = append(out, ts)
		}
	}
	return out
}

// recordDeletion adds a deletion to the model from its tombstone: every
// component that was present moved into quarantine with the digest it had.
func (m *machine) recordDeletion(t *rapid.T, name string, ts *softdelete.Tombstone, moved []string) *deletion {
	s := m.model[name]
	m.seq++
	d := &deletion{seq: m.seq, id: ts.ID, tombstone: ts.Path, archive: ts.ArchivePath, archived: map[string]string{},
		moves: map[string]softdelete.QuarantineMove{}, held: map[string]bool{}, purgeAfter: ts.PurgeAfter}
	if ts.State != softdelete.StateQuarantined {
		t.Fatalf("instance %s: tombstone %s is in state %q after the step returned, want %q", name, ts.Path, ts.State, softdelete.StateQuarantined)
	}
	var got []string
	for _, mv := range ts.Components {
		got = append(got, mv.Component)
		d.moves[mv.Component] = mv
		d.held[mv.Component] = true
		d.archived[mv.Component] = s.digest[mv.Component]
		if mv.Type == typeMySQL {
			dg, err := mariadb.TableDigest(m.ctx, m.f.my, mv.To)
			if err != nil {
				t.Fatalf("instance %s: quarantined %s at %s: %v", name, mv.Component, mv.To, err)
			}
			if d.quarantined == nil {
				d.quarantined = map[string]string{}
			}
			d.quarantined[mv.Component] = dg
		}
	}
	sort.Strings(got)
	moved = slices.Clone(moved)
	sort.Strings(moved)
	if !slices.Equal(got, moved) {
		t.Fatalf("instance %s: tombstone %s moves %v, the model expects exactly the present components %v", name, ts.Path, got, moved)
	}
	for _, c := range moved {
		delete(s.digest, c)
	}
	s.deletions = append(s.deletions, d)
	m.lastDeletion[name] = time.Now()
	return d
}

func presentComponents(s *state) []string {
	var out []string
	for _, c := range componentOrder {
		if _, ok := s.digest[c]; ok {
			out = append(out, c)
		}
	}
	return out
}

// drawName draws a name, three times in four among those that have a
// history (live, or deleted before), else among every candidate, absent
// ones included.
func (m *machine) drawName(t *rapid.T) string {
	var known []string
	for _, n := range m.names {
		if s := m.model[n]; s.live() || len(s.deletions) > 0 {
			known = append(known, n)
		}
	}
	if len(known) > 0 && rapid.IntRange(0, 3).Draw(t, "known") > 0 {
		return rapid.SampledFrom(known).Draw(t, "name")
	}
	return rapid.SampledFrom(m.names).Draw(t, "name")
}

// Discover resolves one name as instance_info does and compares its
// components with the model; the fingerprint is stable across two looks.
func (m *machine) Discover(t *rapid.T) {
	name := m.drawName(t)
	s := m.model[name]
	inst, err := m.f.layout.Resolve(m.ctx, name, m.f.options())
	var nf *instance.NotFoundError
	if !s.live() {
		if !errors.As(err, &nf) {
			t.Fatalf("resolve %s: the model says it is not live, got %v", name, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("resolve %s: %v", name, err)
	}
	again, err := m.f.layout.Resolve(m.ctx, name, m.f.options())
	if err != nil || again.Fingerprint() != inst.Fingerprint() {
		t.Fatalf("resolve %s twice: fingerprints differ (%v)", name, err)
	}
	wantStatus := instance.StatusComplete
	if len(s.digest) < len(componentOrder) {
		wantStatus = instance.StatusPartial
	}
	if inst.Status != wantStatus {
		t.Fatalf("resolve %s: status %s, the model says %s (%s)", name, inst.Status, wantStatus, describe(s.digest))
	}
}

// Modify writes into a live instance, as the application would.
func (m *machine) Modify(t *rapid.T) {
	name := m.drawName(t)
	s := m.model[name]
	which := rapid.SampledFrom(componentOrder).Draw(t, "component")
	if _, ok := s.digest[which]; !ok {
		t.Skip("component not present")
	}
	stamp := fmt.Sprintf("%d", time.Now().UnixNano())
	var err error
	switch which {
	case compConfig, compData:
		err = os.WriteFile(filepath.Join(m.f.path(which, name), "written-"+stamp), []byte(stamp), 0o644)
	case compEnv:
		err = os.WriteFile(m.f.path(compEnv, name), []byte("NAME="+name+"\nAT="+stamp+"\n"), 0o600)
	case compLite:
		var db *sql.DB
		if db, err = sql.Open("sqlite", "file:"+m.f.path(compLite, name)); err == nil {
			_, err = db.ExecContext(m.ctx, "INSERT INTO content (label) VALUES (?)", "written-"+stamp)
			db.Close()
		}
	case compMy:
		var db *sql.DB
		if db, err = m.f.my.Open(m.ctx, ""); err == nil {
			// A squatted database (SquatDatabase) gets its table first.
			q := mariadb.QuoteIdent(m.f.myDatabase(name))
			if _, err = db.ExecContext(m.ctx, "CREATE TABLE IF NOT EXISTS "+q+".content (id INT PRIMARY KEY AUTO_INCREMENT, label VARCHAR(100) NOT NULL, body VARBINARY(32))"); err == nil {
				_, err = db.ExecContext(m.ctx, "INSERT INTO "+q+".content (label) VALUES (?)", "written-"+stamp)
			}
			db.Close()
		}
	case compDB:
		err = withSession(m.ctx, m.f.pg, m.f.database(name), func(db *sql.Conn) error {
			_, err := db.ExecContext(m.ctx, "INSERT INTO public.content (label) VALUES ($1)", "written-"+stamp)
			return err
		})
	}
	if err != nil {
		t.Fatalf("modify %s %s: %v", name, which, err)
	}
	s.digest = m.observe(t, name)
}

// Delete soft-deletes one name through the library.
func (m *machine) Delete(t *rapid.T) {
	name := m.drawName(t)
	retention := rapid.IntRange(1, 40).Draw(t, "retention_days") // 0 means 30 days on main, none on the delete branch
	m.nextSecond(name)
	res, err := softdelete.Delete(m.ctx, m.f.layout, softdelete.Request{Name: name, ArchiveDir: m.archives,
		Reason: "model", RequestedBy: "rapid", RetentionDays: retention, Options: m.f.options()})
	m.afterDelete(t, name, retention, res, err)
}

// afterDelete checks a deletion's result against the model and records it.
func (m *machine) afterDelete(t *rapid.T, name string, retention int, res *softdelete.Result, err error) {
	s := m.model[name]
	s.dirMade = true
	m.learnAbandoned(t, name)
	present := presentComponents(s)
	if len(present) == 0 {
		if err != nil {
			t.Fatalf("delete %s (not live): %v", name, err)
		}
		if res.Changed {
			t.Fatalf("delete %s (not live) reports changed", name)
		}
		return
	}
	if err != nil {
		t.Fatalf("delete %s (live: %s): %v", name, describe(s.digest), err)
	}
	if !res.Changed || res.Archive == nil || !res.Archive.Verified || res.Tombstone == nil {
		t.Fatalf("delete %s: result %+v does not report a verified archive and a tombstone", name, res)
	}
	if _, err := archive.VerifyArchive(m.ctx, res.Archive.Path); err != nil {
		t.Fatalf("delete %s: the archive it reports verified does not verify: %v", name, err)
	}
	if retention <= 0 {
		retention = 30
	}
	if want := res.Tombstone.DeletedAt.Add(time.Duration(retention) * 24 * time.Hour); !res.Tombstone.PurgeAfter.Equal(want) {
		t.Fatalf("delete %s: purge_after %s, want deleted_at + %d days = %s", name, res.Tombstone.PurgeAfter, retention, want)
	}
	news := m.newTombstones(t, name)
	if len(news) != 1 || news[0].Path != res.Tombstone.Path {
		t.Fatalf("delete %s: %d new tombstones, want exactly the one reported (%s)", name, len(news), res.Tombstone.Path)
	}
	m.recordDeletion(t, name, news[0], present)
}

// Restore restores one name through the library, with a random source,
// sometimes a subset of components, sometimes force; the model predicts
// the outcome from the deletions it recorded.
func (m *machine) Restore(t *rapid.T) {
	name, source, comps, force := m.drawRestore(t, true)
	p := m.planRestore(name, comps, force)
	res, err := softdelete.Restore(m.ctx, m.f.layout, softdelete.RestoreRequest{Name: name, ArchiveDir: m.archives,
		Source: source, Components: comps, Force: force, Options: m.f.options()})
	out := restoreOutcome{err: err}
	if res != nil {
		out.source, out.restored, out.changed, out.sources = res.Source, res.Restored, res.Changed, res.Sources
	}
	m.expectRestore(t, name, source, comps, force, p, out)
}

func (m *machine) drawRestore(t *rapid.T, mayForce bool) (name, source string, comps []string, force bool) {
	return m.drawRestoreOf(t, m.drawName(t), mayForce)
}

// drawRestoreOf draws a restore of name: its source, components and force.
func (m *machine) drawRestoreOf(t *rapid.T, name string, mayForce bool) (_, source string, comps []string, force bool) {
	source = rapid.SampledFrom([]string{"", softdelete.SourceAuto, softdelete.SourceQuarantine, softdelete.SourceArchive}).Draw(t, "source")
	if rapid.Bool().Draw(t, "subset") {
		comps = rapid.SliceOfNDistinct(rapid.SampledFrom(componentOrder), 1, 3, rapid.ID[string]).Draw(t, "components")
	}
	if mayForce {
		force = rapid.IntRange(0, 3).Draw(t, "force") == 0
	}
	return name, source, comps, force
}

// restorePlan is what a restore wants and what force moves aside first.
type restorePlan struct {
	want, replace []string
}

func (m *machine) planRestore(name string, comps []string, force bool) restorePlan {
	s := m.model[name]
	var p restorePlan
	for _, c := range componentOrder {
		if comps != nil && !slices.Contains(comps, c) {
			continue
		}
		if _, ok := s.digest[c]; ok {
			if !force {
				continue
			}
			p.replace = append(p.replace, c)
		}
		p.want = append(p.want, c)
	}
	if len(p.replace) > 0 {
		m.nextSecond(name)
	}
	return p
}

// restorePick is where the model expects one component to come back
// from: the quarantine of deletion d, or its archive.
type restorePick struct {
	d          *deletion
	quarantine bool
}

// label is the library's sources entry for the pick.
func (p restorePick) label() string {
	if p.quarantine {
		return "quarantine:" + p.d.id
	}
	return "archive:" + p.d.archive
}

// predictRestore predicts, component by component, where a restore takes
// each wanted component from (pkg/softdelete/restore.go, choose and run):
// the deletions are searched newest first; a deletion whose tombstone is
// neither restored nor purged gives a component from its quarantine when
// it still holds it (unless source is archive); else its archive gives it
// when it holds it (unless source is quarantine); an archive that records
// the component absent sends the search further back. refused is why the
// whole restore refuses and changes nothing, "" when it goes ahead: a
// wanted component found nowhere (every component of the fleet's layout
// is required and backed up, so one that would stay absent refuses too),
// or an archive gone while its tombstone is not purged (its manifest
// cannot be read: the library never passes over it to older data).
func predictRestore(s *state, source string, want []string) (picks map[string]restorePick, refused string) {
	picks = map[string]restorePick{}
	useQ := source != softdelete.SourceArchive
	useA := source != softdelete.SourceQuarantine
	for _, c := range want {
		absent := false
	search:
		for i := len(s.deletions) - 1; i >= 0; i-- {
			d := s.deletions[i]
			if useQ && d.archive != "" && !d.archiveGC && !d.purged && !d.restored() && d.held[c] {
				if !d.tampered[c] {
					picks[c] = restorePick{d: d, quarantine: true}
					break search
				}
				// Compared with its archive, it does not match: the
				// archive gives it, or source quarantine refuses.
				if !useA {
					return nil, fmt.Sprintf("the quarantined copy of %s in deletion %s was tampered with, and source is quarantine", c, d.id)
				}
			}
			if !useA || d.archive == "" {
				continue
			}
			if d.archiveGC {
				if d.purged {
					continue
				}
				return nil, fmt.Sprintf("the archive of deletion %s was removed by keep_last but its tombstone is not purged (restored=%t): its manifest cannot be read", d.id, d.restored())
			}
			if _, ok := d.archived[c]; ok {
				picks[c] = restorePick{d: d}
				break search
			}
			absent = true // recorded absent at d: look further back
		}
		if _, ok := picks[c]; !ok {
			if absent {
				return nil, fmt.Sprintf("component %s was absent at every deletion whose archive is searched: the instance would stay partial", c)
			}
			return nil, fmt.Sprintf("component %s is in no quarantine or archive the restore (source %q) searches", c, source)
		}
	}
	return picks, ""
}

// restoreOutcome is what a restore returned, from the library or a module.
type restoreOutcome struct {
	err      error
	source   string
	restored []string
	sources  map[string]string // component -> "quarantine:<id>" or "archive:<path>"; nil when not reported
	changed  bool
	// rerun marks the outcome of a re-run after a crash: only the end
	// state is compared, not what the re-run reports.
	rerun bool
}

// expectRestore checks a restore's outcome against the model's prediction
// and records it.
func (m *machine) expectRestore(t *rapid.T, name, source string, comps []string, force bool, p restorePlan, res restoreOutcome) {
	s := m.model[name]
	want, err := p.want, res.err
	if len(want) == 0 {
		if err != nil || (res.changed && !res.rerun) {
			t.Fatalf("restore %s %v: every wanted component is present, want no change and no error; got changed=%v err=%v", name, comps, res.changed, err)
		}
		return
	}
	if len(s.deletions) == 0 {
		// Nothing was ever deleted: no archive directory, or one with no
		// tombstone and no archive in it.
		if err == nil || res.changed {
			t.Fatalf("restore %s: nothing was ever deleted, want an error and no change; got changed=%t err=%v", name, res.changed, err)
		}
		return
	}
	picks, why := predictRestore(s, source, want)
	if why != "" {
		// A refusal changes nothing: no move aside, no tombstone.
		if !isRestoreRefusal(err) {
			t.Fatalf("restore %s (source %q, components %v, force %t): the model expects a refusal (%s), got err=%v result %+v", name, source, comps, force, why, err, res)
		}
		if news := m.newTombstones(t, name); len(news) > 0 {
			t.Fatalf("restore %s refused (%v) after writing %d tombstone(s): a refusal must change nothing", name, err, len(news))
		}
		return
	}
	if isRestoreRefusal(err) && strings.Contains(err.Error(), "manifest unreadable") {
		if rec := m.abandonedWithoutArchive(t, name); rec != "" {
			if news := m.newTombstones(t, name); len(news) > 0 {
				t.Fatalf("restore %s refused (%v) after writing %d tombstone(s): a refusal must change nothing", name, err, len(news))
			}
			openBug(t, "abandoned-blocks-restore", "restore %s (source %q, components %v) refused on the abandoned record %s: %v", name, source, comps, rec, err)
			return
		}
	}
	if err != nil {
		var plan []string
		for _, c := range want {
			plan = append(plan, c+"<-"+picks[c].label())
		}
		t.Fatalf("restore %s (source %q, components %v, force %t, rerun %t; the model restores %v): %v", name, source, comps, force, res.rerun, plan, err)
	}
	// Force moves the present components it replaces aside, with a
	// tombstone, before anything comes back.
	if len(p.replace) > 0 {
		news := m.newTombstones(t, name)
		if len(news) != 1 {
			t.Fatalf("restore %s with force: %d new tombstones, want 1 for the %v moved aside", name, len(news), p.replace)
		}
		m.recordDeletion(t, name, news[0], p.replace)
	}
	var restored []string
	nq, na := 0, 0
	for _, c := range want {
		restored = append(restored, c)
		if picks[c].quarantine {
			nq++
		} else {
			na++
		}
	}
	wantSource := softdelete.SourceArchive
	switch {
	case nq > 0 && na > 0:
		wantSource = softdelete.SourceMixed
	case nq > 0:
		wantSource = softdelete.SourceQuarantine
	}
	if !res.rerun {
		got := slices.Clone(res.restored)
		sort.Strings(got)
		exp := slices.Clone(restored)
		sort.Strings(exp)
		if res.source != wantSource || !slices.Equal(got, exp) || !res.changed {
			t.Fatalf("restore %s (source %q, components %v, force %t): got source %s restored %v changed %t; the model expects source %s restored %v changed true (%s)",
				name, source, comps, force, res.source, res.restored, res.changed, wantSource, restored, describePicks(want, picks))
		}
		if res.sources != nil {
			for _, c := range want {
				if res.sources[c] != picks[c].label() {
					t.Fatalf("restore %s (source %q, components %v): component %s came from %q; the model expects %q (%s)",
						name, source, comps, c, res.sources[c], picks[c].label(), describePicks(want, picks))
				}
			}
		}
	}
	for _, c := range want {
		for _, d := range s.deletions {
			if d.tampered[c] && d.held[c] && !picks[c].quarantine {
				timed("restore past a planted quarantine", time.Now()) // counted in the timing table
			}
		}
	}
	used := map[*deletion]bool{}
	for _, c := range want {
		pk := picks[c]
		s.digest[c] = pk.d.archived[c]
		if pk.quarantine {
			pk.d.held[c] = false
			used[pk.d] = true
		}
	}
	for d := range used {
		d.updateRestored()
	}
	if res.rerun {
		// A run killed after placing its components but before recording
		// them leaves a tombstone the re-run does not use (nothing is left
		// to restore): the tombstone's state is what it is on disk.
		m.syncTombstoneStates(t, name)
	}
}

// abandonedWithoutArchive returns an abandoned record of name whose
// archive is gone, "" when there is none.
func (m *machine) abandonedWithoutArchive(t *rapid.T, name string) string {
	tss, err := softdelete.Tombstones(filepath.Join(m.archives, name))
	if err != nil {
		t.Fatalf("read tombstones of %s: %v", name, err)
	}
	for _, ts := range tss {
		if ts.State != stateAbandoned || ts.ArchivePath == "" {
			continue
		}
		if _, err := os.Stat(ts.ArchivePath); errors.Is(err, os.ErrNotExist) {
			return ts.Path
		}
	}
	return ""
}

// describePicks says where the model expects each component from.
func describePicks(want []string, picks map[string]restorePick) string {
	var out []string
	for _, c := range want {
		out = append(out, c+" from "+picks[c].label())
	}
	return strings.Join(out, ", ")
}

// syncTombstoneStates reads the restored state of every deletion of name
// from its tombstone.
func (m *machine) syncTombstoneStates(t *rapid.T, name string) {
	for _, d := range m.model[name].deletions {
		ts, err := softdelete.ReadTombstone(d.tombstone)
		if err != nil {
			t.Fatalf("read tombstone %s: %v", d.tombstone, err)
		}
		if ts.State == softdelete.StateRestored && !d.restoredState {
			t.Fatalf("instance %s: tombstone %s says restored, but its quarantine holds %v", name, d.tombstone, d.held)
		}
		d.restoredState = ts.State == softdelete.StateRestored
	}
}

// Purge purges through the library with a random keep_last and a clock
// moved forward by a random number of days.
func (m *machine) Purge(t *rapid.T) {
	req := m.drawPurge(t)
	purged, err := softdelete.Purge(m.ctx, req)
	m.expectPurge(t, req, purged, err, false)
}

// drawPurge draws a purge: of one name or of all, a random keep_last, and
// a clock moved forward by a random number of days.
func (m *machine) drawPurge(t *rapid.T) softdelete.PurgeRequest {
	name := ""
	if rapid.Bool().Draw(t, "one") {
		name = m.drawName(t)
	}
	keep := rapid.IntRange(0, 3).Draw(t, "keep_last")
	days := rapid.IntRange(0, 70).Draw(t, "days_later")
	now := time.Now().UTC().Add(time.Duration(days) * 24 * time.Hour)
	return softdelete.PurgeRequest{Layouts: []*instance.Layout{m.f.layout}, ArchiveDir: m.archives, Name: name, KeepLast: keep, Now: now, PG: m.f.pg}
}

// expectPurge checks a purge's outcome against the model and records it.
// After a re-run (rerun: an earlier run of the same purge was killed) the
// report may leave out what the killed run removed: only the end state,
// compared by Check, counts.
func (m *machine) expectPurge(t *rapid.T, req softdelete.PurgeRequest, purged []softdelete.Purged, err error, rerun bool) {
	name, keep, now := req.Name, req.KeepLast, req.Now
	days := int(time.Until(now).Hours()/24 + 0.5)
	if keep < 1 && name == "" {
		var re *softdelete.RefusedError
		if !errors.As(err, &re) {
			t.Fatalf("purge of every instance with keep_last %d: want a refusal, got %v", keep, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("purge %q keep_last %d: %v", name, keep, err)
	}
	var expected []string
	for _, n := range m.names {
		if name != "" && n != name {
			continue
		}
		s := m.model[n]
		for _, d := range s.deletions {
			if d.purged || d.restored() || now.Before(d.purgeAfter) {
				continue
			}
			d.purged = true
			for c, held := range d.held {
				if held {
					expected = append(expected, d.moves[c].To)
				}
				d.held[c] = false
			}
		}
		expected = append(expected, m.purgeArchives(t, n, keep, now)...)
	}
	var reported []string
	for _, p := range purged {
		reported = append(reported, p.Path)
	}
	sort.Strings(reported)
	sort.Strings(expected)
	if rerun {
		for _, p := range reported {
			if !slices.Contains(expected, p) {
				t.Fatalf("purge %q keep_last %d, %d days later, re-run after a SIGKILL: reports %s as purged, which the model keeps (expected %v)", name, keep, days, p, expected)
			}
		}
		return
	}
	if !slices.Equal(reported, expected) {
		openBug(t, "purge-reports-restored", "purge %q keep_last %d, %d days later: reports %v as purged, the model expects %v (what was still in quarantine, and the archives beyond keep_last)", name, keep, days, reported, expected)
	}
}

// purgeArchives predicts which archives of name a purge removes, marks
// them, and returns their paths. keep_last counts the archives of
// deletions only, newest first by name (ids start with the time): beyond
// the newest keep, a deletion's archive goes once its purge_after has
// passed and its quarantine is gone (purged or restored). The extra
// copies of abandoned attempts and archives without a tombstone are
// never counted nor kept by keep_last: each goes once its own
// purge_after has passed (an orphan has none to wait for). Retention is
// retention, keep_last only keeps more.
func (m *machine) purgeArchives(t *rapid.T, name string, keep int, now time.Time) []string {
	s := m.model[name]
	type archive struct {
		path string
		d    *deletion
		a    *abandonedRec
	}
	var all []archive
	for _, d := range s.deletions {
		if d.archive != "" && !d.archiveGC {
			all = append(all, archive{path: d.archive, d: d})
		}
	}
	for _, a := range s.abandoned {
		if a.archive != "" && !a.archiveGC {
			all = append(all, archive{path: a.archive, a: a})
		}
	}
	for _, o := range s.orphans {
		all = append(all, archive{path: o}) // no tombstone: no retention to wait for
	}
	sort.Slice(all, func(i, j int) bool { return filepath.Base(all[i].path) < filepath.Base(all[j].path) })
	deletions := 0
	for _, a := range all {
		if a.d != nil {
			deletions++
		}
	}
	var out []string
	seen := 0
	for _, a := range all {
		if a.d != nil {
			seen++
			if seen > deletions-keep || now.Before(a.d.purgeAfter) || !(a.d.purged || a.d.restored()) {
				continue
			}
		}
		if a.a != nil && now.Before(a.a.purgeAfter) {
			continue
		}
		out = append(out, a.path)
	}
	for _, a := range all {
		if !slices.Contains(out, a.path) {
			continue
		}
		switch {
		case a.d != nil:
			a.d.archiveGC = true
		case a.a != nil:
			a.a.archiveGC = true
		default:
			s.orphans = slices.DeleteFunc(s.orphans, func(o string) bool { return o == a.path })
		}
	}
	return out
}

// isRestoreRefusal reports whether err is a restore's refusal (nothing
// changed), from the library or a module's message.
func isRestoreRefusal(err error) bool {
	if err == nil {
		return false
	}
	var re *softdelete.RefusedError
	var rre *softdelete.RestoreRefusedError
	return errors.As(err, &re) || errors.As(err, &rre) || strings.Contains(err.Error(), "refusing to restore")
}
