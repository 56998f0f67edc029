package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/sqlite"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

func open(t *testing.T, path string) *sql.DB {
	t.Helper()
	u := url.URL{Scheme: "file", Path: path, OmitHost: true}
	db, err := sql.Open("sqlite", u.String())
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	return db
}

// liveWithWAL makes a database whose last rows are only in its -wal, as an
// application killed (or still running) leaves it: the file alone lacks
// them. It returns the digest of the whole database.
func liveWithWAL(t *testing.T, path string, rows int) string {
	t.Helper()
	scratch := filepath.Join(t.TempDir(), "w.db")
	db := open(t, scratch)
	for _, q := range []string{"PRAGMA journal_mode=WAL", "PRAGMA wal_autocheckpoint=0",
		"CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT, blob BLOB)", "CREATE INDEX docs_body ON docs(body)",
		"CREATE TABLE kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID"} {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
	_, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	require.NoError(t, err)
	for i := range rows {
		_, err := db.Exec("INSERT INTO docs (body, blob) VALUES (?, ?)", fmt.Sprintf("doc %d", i), []byte{byte(i), 0, 1})
		require.NoError(t, err)
		_, err = db.Exec("INSERT INTO kv VALUES (?, ?)", fmt.Sprintf("k%d", i), i)
		require.NoError(t, err)
	}
	// Copied while open: the rows are in the -wal only.
	for _, s := range []string{"", "-wal"} {
		data, err := os.ReadFile(scratch + s)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path+s, data, 0o640))
	}
	require.NoError(t, db.Close())
	fi, err := os.Stat(path + "-wal")
	require.NoError(t, err)
	require.Positive(t, fi.Size(), "the rows are in the -wal")
	// The digest of the full database, from a copy that replays the -wal.
	dir := t.TempDir()
	for _, s := range []string{"", "-wal"} {
		data, err := os.ReadFile(path + s)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "d.db"+s), data, 0o600))
	}
	c := open(t, filepath.Join(dir, "d.db"))
	var n int
	require.NoError(t, c.QueryRow("SELECT count(*) FROM docs").Scan(&n))
	require.Equal(t, rows, n)
	_, err = c.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	require.NoError(t, err)
	_, err = c.Exec("PRAGMA journal_mode=DELETE")
	require.NoError(t, err)
	require.NoError(t, c.Close())
	sum, err := sqlite.Digest(context.Background(), filepath.Join(dir, "d.db"))
	require.NoError(t, err)
	return sum
}

type fleet struct {
	root, archives, dbFile string
	l                      *instance.Layout
	opts                   instance.Options
}

func newFleet(t *testing.T) *fleet {
	root := t.TempDir()
	f := &fleet{root: root, archives: filepath.Join(root, "archives"), dbFile: filepath.Join(root, "srv", "acme", "app.db")}
	l, err := instance.ParseLayout([]byte(fmt.Sprintf("app: notes\ncomponents:\n"+
		"  - name: files\n    type: dir\n    path: %[1]s/srv/{name}/files\n"+
		"  - name: db\n    type: sqlite\n    path: %[1]s/srv/{name}/app.db\n", root)), "notes.yml")
	require.NoError(t, err)
	f.l = l
	f.opts = instance.Options{SkipSizes: true, SystemdDir: filepath.Join(root, "systemd")}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "srv", "acme", "files"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "srv", "acme", "files", "a"), []byte("a"), 0o644))
	return f
}

func (f *fleet) delete(t *testing.T) *softdelete.Result {
	t.Helper()
	res, err := softdelete.Delete(context.Background(), f.l, softdelete.Request{Name: "acme", ArchiveDir: f.archives, Reason: "test", Options: f.opts})
	require.NoError(t, err)
	return res
}

func dbMove(t *testing.T, res *softdelete.Result) softdelete.QuarantineMove {
	for _, m := range res.Quarantined {
		if m.Component == "db" {
			return m
		}
	}
	t.Fatal("no quarantine move of the db")
	return softdelete.QuarantineMove{}
}

func digest(t *testing.T, path string) string {
	t.Helper()
	sum, err := sqlite.Digest(context.Background(), path)
	require.NoError(t, err)
	return sum
}

// Soft delete archives the database with what is still in its -wal (a
// consistent copy, never the file alone), moves the file and its -wal
// together, restores it from quarantine; a quarantined copy tampered with
// comes back from the archive instead; purge removes the trash with the
// companions.
func TestLifecycle_WALContentIsArchivedAndRestored(t *testing.T) {
	ctx := context.Background()
	f := newFleet(t)
	want := liveWithWAL(t, f.dbFile, 50)

	insts, err := f.l.Discover(ctx, f.opts)
	require.NoError(t, err)
	require.Len(t, insts, 1)
	st, _ := insts[0].State("db")
	require.True(t, st.Present, st.Problem)

	res := f.delete(t)
	q := dbMove(t, res)
	assert.Equal(t, "sqlite", q.Type)
	assert.NoFileExists(t, f.dbFile)
	assert.NoFileExists(t, f.dbFile+"-wal")
	assert.FileExists(t, q.To)
	// (The copy's own close checkpointed the -wal into the file: the
	// companions' moves are tested in TestQuarantine_MovesCompanions.)

	// The archived copy alone holds every row.
	m, err := softdelete.VerifyArchive(ctx, res.Archive.Path)
	require.NoError(t, err)
	require.Len(t, m.Databases, 1)
	assert.Equal(t, "components/db.sqlite", m.Databases[0].Path)
	runbook := string(softdelete.Runbook(m, res.Archive.Path))
	assert.Contains(t, runbook, "### db: SQLite database `"+f.dbFile+"`")

	rr, err := softdelete.Restore(ctx, f.l, softdelete.RestoreRequest{Name: "acme", ArchiveDir: f.archives, Options: f.opts})
	require.NoError(t, err)
	assert.Equal(t, softdelete.SourceQuarantine, rr.Source)
	assert.Equal(t, want, digestLive(t, f.dbFile))

	// Tampered in quarantine: the archive's copy comes back.
	res = f.delete(t)
	q = dbMove(t, res)
	tamper(t, q.To)
	rr, err = softdelete.Restore(ctx, f.l, softdelete.RestoreRequest{Name: "acme", ArchiveDir: f.archives, Options: f.opts})
	require.NoError(t, err)
	assert.Equal(t, "archive:"+res.Archive.Path, rr.Sources["db"])
	assert.NoFileExists(t, f.dbFile+"-wal", "the archived copy is self-contained")
	assert.Equal(t, want, digest(t, f.dbFile), "byte-identical content restored from the archive")
	fi, err := os.Stat(f.dbFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(sqlite.RestoredMode), fi.Mode().Perm())

	// Purge: every quarantine of the instance's older deletions goes, with
	// their companions.
	res = f.delete(t)
	q = dbMove(t, res)
	_, err = softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: f.archives, KeepLast: 1, Layouts: []*instance.Layout{f.l},
		Now: time.Now().Add(3650 * 24 * time.Hour)})
	require.NoError(t, err)
	for _, s := range []string{"", "-wal", "-shm"} {
		_, err := os.Lstat(q.To + s)
		assert.True(t, errors.Is(err, os.ErrNotExist), "%s purged", q.To+s)
	}
	_, err = os.Lstat(filepath.Dir(q.To))
	assert.True(t, errors.Is(err, os.ErrNotExist), "the trash entry is gone")
}

// digestLive digests a database that may have a -wal, through a copy.
func digestLive(t *testing.T, path string) string {
	dir := t.TempDir()
	for _, s := range []string{"", "-wal"} {
		data, err := os.ReadFile(path + s)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "d.db"+s), data, 0o600))
	}
	c := open(t, filepath.Join(dir, "d.db"))
	_, err := c.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	require.NoError(t, err)
	_, err = c.Exec("PRAGMA journal_mode=DELETE")
	require.NoError(t, err)
	require.NoError(t, c.Close())
	return digest(t, filepath.Join(dir, "d.db"))
}

func tamper(t *testing.T, path string) {
	c := open(t, path)
	_, err := c.Exec("UPDATE docs SET body = 'changed' WHERE id = 3")
	require.NoError(t, err)
	require.NoError(t, c.Close())
}

// A process that holds the database open refuses the deletion, named;
// nothing moves.
func TestDelete_RefusedWhileOpenInAProcess(t *testing.T) {
	f := newFleet(t)
	liveWithWAL(t, f.dbFile, 3)
	fd, err := os.Open(f.dbFile + "-wal")
	require.NoError(t, err)
	defer fd.Close()
	cmd := exec.Command("sleep", "60")
	cmd.ExtraFiles = []*os.File{fd}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	fd.Close()

	_, err = softdelete.Delete(context.Background(), f.l, softdelete.Request{Name: "acme", ArchiveDir: f.archives, Reason: "test", Options: f.opts})
	var re *softdelete.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Reason, fmt.Sprintf("pid %d (sleep)", cmd.Process.Pid))
	assert.FileExists(t, f.dbFile)
	assert.FileExists(t, f.dbFile+"-wal")
}

// A file that is not a SQLite database is never archived as one.
func TestState_NotASQLiteFileIsAProblem(t *testing.T) {
	f := newFleet(t)
	require.NoError(t, os.WriteFile(f.dbFile, []byte("not a database, just text"), 0o600))
	insts, err := f.l.Discover(context.Background(), f.opts)
	require.NoError(t, err)
	st, _ := insts[0].State("db")
	assert.Contains(t, st.Problem, "is not a SQLite database")
	_, err = softdelete.Delete(context.Background(), f.l, softdelete.Request{Name: "acme", ArchiveDir: f.archives, Reason: "test", Options: f.opts})
	require.Error(t, err)
	assert.FileExists(t, f.dbFile)
}

// A truncated or corrupted copy is refused by VerifyDump.
func TestVerifyDump_CatchesTruncationAndCorruption(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	liveWithWAL(t, src, 200)
	cp := filepath.Join(dir, "copy.db")
	_, err := sqlite.Kind{}.Dump(context.Background(), kind.Env{}, kind.Target{Locator: src}, cp)
	require.NoError(t, err)
	data, err := os.ReadFile(cp)
	require.NoError(t, err)
	sum, err := sqlite.Kind{}.VerifyDump(strings.NewReader(string(data)))
	require.NoError(t, err)
	assert.Equal(t, 2, sum.Entries)
	_, err = sqlite.Kind{}.VerifyDump(strings.NewReader(string(data[:len(data)/2])))
	assert.Error(t, err, "a truncated copy")
	bad := []byte(string(data))
	for i := len(bad) - 4096; i < len(bad)-3000; i++ {
		bad[i] ^= 0xff
	}
	_, err = sqlite.Kind{}.VerifyDump(strings.NewReader(string(bad)))
	assert.Error(t, err, "a corrupted page")
	_, err = sqlite.Kind{}.VerifyDump(io.LimitReader(strings.NewReader("SQLite format 3\x00"), 16))
	assert.Error(t, err, "a header alone")
}

// Restore never puts a database beside a stale -wal of another one.
func TestStage_RefusesAStaleCompanion(t *testing.T) {
	dir := t.TempDir()
	loc := filepath.Join(dir, "app.db")
	require.NoError(t, os.WriteFile(loc+"-wal", []byte("stale"), 0o600))
	_, err := sqlite.Kind{}.Stage(context.Background(), kind.Env{}, kind.Target{App: "a", Instance: "i", Locator: loc,
		Component: kind.Component{Name: "db"}}, "/nonexistent")
	require.Error(t, err)
	assert.Contains(t, err.Error(), loc+"-wal")
}

func TestCheckTemplate(t *testing.T) {
	k := sqlite.Kind{}
	assert.Equal(t, "", k.CheckTemplate("/srv/app/{name}/app.db"))
	assert.Contains(t, k.CheckTemplate("/srv/app/{name}/app.db-wal"), "-wal")
	assert.Contains(t, k.CheckTemplate("relative/{name}.db"), "absolute")
	_ = syscall.Getpid
}

// Quarantine moves a database with its companions, finishes a move that
// stopped half-way (companion moved, database not), and moves them back.
func TestQuarantine_MovesCompanions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	from := filepath.Join(dir, "app.db")
	for _, s := range []string{"", "-wal", "-shm"} {
		require.NoError(t, os.WriteFile(from+s, []byte("x"+s), 0o600))
	}
	k := sqlite.Kind{}
	m := kind.Move{Component: "db", Type: "sqlite", From: from, To: k.QuarantineTarget(from, "del-1")}
	// Half-way: the database and its -wal moved, then a crash.
	require.NoError(t, os.MkdirAll(filepath.Dir(m.To), 0o700))
	require.NoError(t, os.Rename(from, m.To))
	require.NoError(t, os.Rename(from+"-wal", m.To+"-wal"))
	require.NoError(t, k.Quarantine(ctx, kind.Env{}, m))
	require.NoError(t, k.Quarantine(ctx, kind.Env{}, m), "a re-run finds it done")
	for _, s := range []string{"", "-wal", "-shm"} {
		assert.NoFileExists(t, from+s)
		data, err := os.ReadFile(m.To + s)
		require.NoError(t, err)
		assert.Equal(t, "x"+s, string(data))
	}
	assert.Subset(t, k.TrashNames(m), []string{"app.db", "app.db-wal", "app.db-shm", "app.db-journal"})
	held, err := k.Held(ctx, kind.Env{}, m)
	require.NoError(t, err)
	assert.True(t, held)
	require.NoError(t, k.Unquarantine(ctx, kind.Env{}, m))
	require.NoError(t, k.Unquarantine(ctx, kind.Env{}, m), "a re-run finds it done")
	for _, s := range []string{"", "-wal", "-shm"} {
		assert.FileExists(t, from+s)
	}
	// Both sides present: refused, nothing moved.
	require.NoError(t, os.MkdirAll(filepath.Dir(m.To), 0o700))
	require.NoError(t, os.WriteFile(m.To, []byte("other"), 0o600))
	assert.Error(t, k.Quarantine(ctx, kind.Env{}, m))
	for _, s := range []string{"", "-wal", "-shm"} {
		assert.FileExists(t, from+s, "nothing moved")
	}
}

// RESTORE.md's block, run literally by bash, puts the archived copy back,
// and refuses (changing nothing) while the database or a companion is
// there.
func TestRunbookStep_RestoresByHand(t *testing.T) {
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("zstd not installed")
	}
	f := newFleet(t)
	want := liveWithWAL(t, f.dbFile, 20)
	res := f.delete(t)
	dest := filepath.Join(t.TempDir(), "back", "app's db")
	block := func() string {
		var b strings.Builder
		sqlite.Kind{}.RunbookStep(&b, kind.RunbookStep{Component: "db", Type: "sqlite", Locator: dest,
			ArchivePath: "components/db.sqlite", Present: true, Archive: res.Archive.Path, Tag: "t1"})
		s := b.String()
		i := strings.Index(s, "```sh\n")
		j := strings.LastIndex(s, "```")
		require.True(t, i >= 0 && j > i, s)
		return s[i+6 : j]
	}
	run := func() (string, error) {
		out, err := exec.Command("bash", "-c", "set -o pipefail\n"+block()).CombinedOutput()
		return string(out), err
	}
	out, err := run()
	require.NoError(t, err, out)
	assert.Equal(t, want, digest(t, dest))
	entries, err := os.ReadDir(filepath.Dir(dest))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no staging leftover")

	require.NoError(t, os.Remove(dest))
	require.NoError(t, os.WriteFile(dest+"-wal", []byte("stale"), 0o600))
	out, err = run()
	require.Error(t, err)
	assert.Contains(t, out, "REFUSED")
	assert.NoFileExists(t, dest)
}
