package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/sqlite"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// walDB leaves at path a database in WAL mode whose last rows live only
// in its -wal, with no connection open (the files of an open database,
// copied while nothing writes: what a stopped application leaves).
func walDB(t *testing.T, path string) {
	t.Helper()
	live := filepath.Join(t.TempDir(), "live.db")
	db, err := sql.Open("sqlite", "file:"+live)
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	for _, s := range []string{"PRAGMA journal_mode = WAL", "PRAGMA wal_autocheckpoint = 0",
		"CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, b BLOB)", "INSERT INTO a (v) VALUES ('first')",
		"PRAGMA wal_checkpoint(TRUNCATE)"} {
		_, err := db.Exec(s)
		require.NoError(t, err, s)
	}
	for i := range 30 {
		_, err := db.Exec("INSERT INTO a (v, b) VALUES (?, randomblob(64))", fmt.Sprintf("row %d", i))
		require.NoError(t, err)
	}
	for _, suf := range []string{"", "-wal", "-shm"} {
		data, err := os.ReadFile(live + suf)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path+suf, data, 0o640))
	}
	require.NoError(t, db.Close())
}

// TestSQLite_Lifecycle: a SQLite-backed instance (beside a directory)
// whose newest rows are only in the -wal is refused while a process holds
// the database open, soft-deleted (the archive holds a checked copy with
// those rows, nothing of the database stays in place), restored from
// quarantine with the same content, soft-deleted again, its quarantine
// tampered with and restored from the archive with the original content,
// and purged with its companions.
func TestSQLite_Lifecycle(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	l, err := instance.ParseLayout([]byte(fmt.Sprintf("app: tracim\ncomponents:\n"+
		"  - name: files\n    type: dir\n    path: %[1]s/srv/{name}/files\n"+
		"  - name: db\n    type: sqlite\n    path: %[1]s/srv/{name}/tracim.sqlite\n", root)), "tracim.yml")
	require.NoError(t, err)
	opts := instance.Options{SkipSizes: true, SystemdDir: filepath.Join(root, "systemd")}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "srv", "acme", "files"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "srv", "acme", "files", "f"), []byte("files"), 0o644))
	dbFile := filepath.Join(root, "srv", "acme", "tracim.sqlite")
	walDB(t, dbFile)
	want, err := sqlitedb.Digest(ctx, dbFile)
	require.NoError(t, err)

	insts, err := l.Discover(ctx, opts)
	require.NoError(t, err)
	require.Len(t, insts, 1, "the -wal and -shm are no instances")
	st, _ := insts[0].State("db")
	assert.True(t, st.Present)
	assert.Equal(t, dbFile, st.Locator)

	archives := filepath.Join(root, "archives")
	req := softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "test", Options: opts}

	// Held open by another process: refused, named, nothing moved.
	cmd := exec.Command("sleep", "30")
	f, err := os.Open(dbFile + "-wal")
	require.NoError(t, err)
	cmd.ExtraFiles = []*os.File{f}
	require.NoError(t, cmd.Start())
	f.Close()
	_, err = softdelete.Delete(ctx, l, req)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	var re *softdelete.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Error(), "sleep")
	assert.FileExists(t, dbFile)
	assert.FileExists(t, dbFile+"-wal")

	del := func(withWAL bool) softdelete.QuarantineMove {
		res, err := softdelete.Delete(ctx, l, req)
		require.NoError(t, err)
		left, err := sqlitedb.Parts(dbFile)
		require.NoError(t, err)
		require.Empty(t, left, "nothing of the database stays in place")
		m, err := archive.VerifyArchive(ctx, res.Archive.Path)
		require.NoError(t, err)
		require.Len(t, m.Databases, 1)
		assert.Equal(t, "components/db.sqlite", m.Databases[0].Path)
		assert.Contains(t, string(archive.Runbook(m, res.Archive.Path)), "### db: SQLite database `"+dbFile+"`")
		for _, q := range res.Quarantined {
			if q.Component == "db" {
				if withWAL {
					assert.FileExists(t, q.To+"-wal", "the -wal went with the database")
				}
				return q
			}
		}
		t.Fatal("no quarantine move for db")
		return softdelete.QuarantineMove{}
	}
	del(true)
	rr, err := softdelete.Restore(ctx, l, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: opts})
	require.NoError(t, err)
	assert.Equal(t, softdelete.SourceQuarantine, rr.Source)
	require.NoError(t, sqlitedb.CheckDigest(ctx, dbFile, want), "back from quarantine with every row")
	assert.FileExists(t, dbFile+"-wal", "its -wal came back with it")

	// A tampered quarantine is caught and the archive's copy restored.
	q := del(true)
	db, err := sql.Open("sqlite", "file:"+q.To)
	require.NoError(t, err)
	_, err = db.Exec("UPDATE a SET v = 'FIRST' WHERE id = 1")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	rr, err = softdelete.Restore(ctx, l, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: opts})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(rr.Sources["db"], "archive:"), "%+v", rr.Sources)
	assert.Contains(t, strings.Join(rr.Notes, "\n"), "changed since it was archived")
	require.NoError(t, sqlitedb.CheckDigest(ctx, dbFile, want), "the archive's copy, with the rows that were only in the -wal")
	require.NoError(t, sqlitedb.Check(ctx, dbFile), "a self-contained file")

	// Purge removes the quarantines with their companions.
	q = del(false) // the archive's copy came back: self-contained, no -wal
	_, err = softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: archives, KeepLast: 1, Layouts: []*instance.Layout{l},
		Now: time.Now().Add(24 * time.Hour)})
	require.NoError(t, err)
	for _, suf := range []string{"", "-wal", "-shm"} {
		assert.NoFileExists(t, q.To+suf)
	}
}

// TestSQLite_VerifyDumpCatchesBrokenCopies: a copy cut short, with a
// damaged page, or not a database fails VerifyDump.
func TestSQLite_VerifyDumpCatchesBrokenCopies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	walDB(t, src)
	cp := filepath.Join(dir, "copy.sqlite")
	_, err := sqlitedb.Copy(ctx, src, cp)
	require.NoError(t, err)
	good, err := os.ReadFile(cp)
	require.NoError(t, err)
	_, err = sqlite.Kind{}.VerifyDump(bytes.NewReader(good))
	require.NoError(t, err)
	damaged := bytes.Clone(good)
	for i := 4096; i < 4108; i++ {
		damaged[i] ^= 0xa5
	}
	for what, b := range map[string][]byte{"cut": good[:len(good)-100], "cut at a page": good[:4096], "damaged page": damaged, "not sqlite": []byte("SQLite format 2\x00 and more")} {
		_, err := sqlite.Kind{}.VerifyDump(bytes.NewReader(b))
		var ce *sqlitedb.CorruptError
		assert.ErrorAs(t, err, &ce, what)
	}
}

// TestSQLite_Templates: a path template, refused when it ends like a
// companion; the overlap analysis sees it as a path.
func TestSQLite_Templates(t *testing.T) {
	_, err := instance.ParseLayout([]byte("app: x\ncomponents:\n  - name: db\n    type: sqlite\n    path: /srv/x/{name}.db-wal\n"), "x.yml")
	var le *instance.LayoutError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "components[0].path", le.Key)
	assert.Contains(t, le.Msg, "-wal")
	_, err = instance.ParseLayout([]byte("app: x\ncomponents:\n  - name: db\n    type: sqlite\n    database: x_{name}\n"), "x.yml")
	require.ErrorAs(t, err, &le)
	_, err = instance.ParseLayout([]byte("app: x\ncomponents:\n  - name: data\n    type: dir\n    path: /srv/x/{name}\n  - name: db\n    type: sqlite\n    path: /srv/x/{name}\n"), "x.yml")
	require.Error(t, err, "a sqlite path and a dir path that collide are refused")
}

// TestSQLite_RunbookStep: the RESTORE.md block is valid bash for hostile
// paths.
func TestSQLite_RunbookStep(t *testing.T) {
	for _, name := range []string{"plain", "sp ace", "q'uote", "d\"q$(x)`y`", "-dash"} {
		dir := t.TempDir()
		dest := filepath.Join(dir, "srv", name+".sqlite")
		var b strings.Builder
		sqlite.Kind{}.RunbookStep(&b, kind.RunbookStep{Component: "db", Type: "sqlite", Locator: dest,
			ArchivePath: "components/db.sqlite", Present: true, Archive: filepath.Join(dir, "archive.tar.zst"), Tag: "t1", Index: 1})
		text := b.String()
		i := strings.Index(text, "```sh\n")
		j := strings.LastIndex(text, "```")
		require.True(t, i >= 0 && j > i, text)
		script := text[i+6 : j]
		out, err := exec.Command("bash", "-n", "-c", script).CombinedOutput()
		require.NoError(t, err, "%s\n%s", out, script)
		assert.Contains(t, text, "SQLite database")
	}
}

// TestSQLite_HostileFileNames: database file names that a SQLite URI or a
// shell would misread soft-delete and come back from the archive with
// their content.
func TestSQLite_HostileFileNames(t *testing.T) {
	ctx := context.Background()
	for i, base := range []string{"amp&mode=memory.db", "h#frag %41.db", "it's \"x\" $(y).db", "-dash.db"} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			root := t.TempDir()
			yml := fmt.Sprintf("app: lite\ncomponents:\n  - name: db\n    type: sqlite\n    path: %q\n", root+"/srv/{name}/"+base)
			l, err := instance.ParseLayout([]byte(yml), "lite.yml")
			require.NoError(t, err)
			require.NoError(t, os.MkdirAll(filepath.Join(root, "srv", "acme"), 0o755))
			dbFile := filepath.Join(root, "srv", "acme", base)
			walDB(t, dbFile)
			want, err := sqlitedb.Digest(ctx, dbFile)
			require.NoError(t, err)
			opts := instance.Options{SkipSizes: true, SystemdDir: filepath.Join(root, "systemd")}
			archives := filepath.Join(root, "archives")
			_, err = softdelete.Delete(ctx, l, softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "test", Options: opts})
			require.NoError(t, err)
			assert.NoFileExists(t, dbFile)
			_, err = softdelete.Restore(ctx, l, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Source: "archive", Options: opts})
			require.NoError(t, err)
			require.NoError(t, sqlitedb.CheckDigest(ctx, dbFile, want))
		})
	}
}
