package sqlitedb_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

// walDB leaves at path a database in WAL mode whose last 40 rows live
// only in its -wal (as a crashed or still-running application leaves
// it), with no connection open: the files of an open database, copied
// while nothing writes.
func walDB(t *testing.T, path string) {
	t.Helper()
	live := filepath.Join(t.TempDir(), "live.db")
	db := openDB(t, live, "PRAGMA journal_mode = WAL", "PRAGMA wal_autocheckpoint = 0",
		"CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, r REAL, b BLOB)", "CREATE INDEX av ON a (v)",
		"INSERT INTO a (v, r, b) VALUES ('first', 1.5, x'00')", "PRAGMA wal_checkpoint(TRUNCATE)")
	for i := range 40 {
		_, err := db.Exec("INSERT INTO a (v, r, b) VALUES (?, ?, randomblob(50))", fmt.Sprintf("row %d", i), float64(i)/3)
		require.NoError(t, err)
	}
	for _, suf := range []string{"", "-wal", "-shm"} {
		data, err := os.ReadFile(live + suf)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path+suf, data, 0o640))
	}
	require.NoError(t, db.Close())
	st, err := os.Stat(path + "-wal")
	require.NoError(t, err)
	require.Positive(t, st.Size())
}

func rows(t *testing.T, path string) int {
	t.Helper()
	u := url.URL{Scheme: "file", Path: path, OmitHost: true}
	db, err := sql.Open("sqlite", u.String()+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM a").Scan(&n))
	return n
}

// hostileFileNames are names a SQLite URI or a shell would misread.
var hostileFileNames = []string{"plain.db", "q?mode=memory.db", "h#frag.db", "p%41.db", "sp ace.db", "new\nline.db", "-dash.db", "ünï.db"}

// TestMove_CarriesCompanions: a database whose newest rows are only in
// its -wal is moved with its -wal and -shm, under hostile names: nothing
// of it is left at the old name, the moved database has every row and the
// same digest, and moving it back gives the same digest again.
func TestMove_CarriesCompanions(t *testing.T) {
	ctx := context.Background()
	for i, name := range hostileFileNames {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, name)
			walDB(t, src)
			want, err := sqlitedb.Digest(ctx, src)
			require.NoError(t, err)
			q := filepath.Join(dir, ".quarantine", name)
			require.NoError(t, os.Mkdir(filepath.Dir(q), 0o700))
			require.NoError(t, sqlitedb.Move(ctx, src, q))
			left, err := sqlitedb.Parts(src)
			require.NoError(t, err)
			assert.Empty(t, left, "nothing of the database stays at its name")
			assert.FileExists(t, q+"-wal", "the -wal moved with it")
			assert.Equal(t, 41, rows(t, q), "every row, those only in the -wal too")
			require.NoError(t, sqlitedb.CheckDigest(ctx, q, want))
			require.NoError(t, sqlitedb.Move(ctx, q, src))
			require.NoError(t, sqlitedb.CheckDigest(ctx, src, want))
		})
	}
}

// TestMove_RefusesWhileHeldOpen: another process holding the -wal (or the
// file) open is named, and nothing moves.
func TestMove_RefusesWhileHeldOpen(t *testing.T) {
	ctx := context.Background()
	for _, part := range []string{"", "-wal"} {
		t.Run("part"+part, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "app.db")
			walDB(t, src)
			cmd := exec.Command("sleep", "30")
			f, err := os.Open(src + part)
			require.NoError(t, err)
			cmd.ExtraFiles = []*os.File{f}
			require.NoError(t, cmd.Start())
			f.Close()
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			err = sqlitedb.Move(ctx, src, filepath.Join(dir, "q.db"))
			var iu *sqlitedb.InUseError
			require.ErrorAs(t, err, &iu)
			require.Len(t, iu.Holders, 1)
			assert.Equal(t, cmd.Process.Pid, iu.Holders[0].PID)
			assert.Contains(t, err.Error(), "sleep")
			assert.NotEmpty(t, iu.Hint())
			for _, suf := range []string{"", "-wal", "-shm"} {
				assert.FileExists(t, src+suf, "nothing moved")
				assert.NoFileExists(t, filepath.Join(dir, "q.db"+suf))
			}
		})
	}
}

// TestMove_Conflicts: a -wal (or file) already at the destination stops
// the move before anything is renamed: a stray -wal beside a database is
// read into it.
func TestMove_Conflicts(t *testing.T) {
	ctx := context.Background()
	for _, suf := range []string{"", "-wal", "-journal"} {
		t.Run("dst"+suf, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "app.db"), filepath.Join(dir, "q.db")
			walDB(t, src)
			require.NoError(t, os.WriteFile(dst+suf, []byte("in the way"), 0o600))
			err := sqlitedb.Move(ctx, src, dst)
			var ce *sqlitedb.ConflictError
			require.ErrorAs(t, err, &ce)
			for _, s := range []string{"", "-wal", "-shm"} {
				assert.FileExists(t, src+s, "nothing moved")
			}
		})
	}
}

// TestMove_CutShortThenFinished stops a move after each of its renames:
// the database is split between both names, and Move called again
// finishes it, with the same digest; the file itself moves first.
func TestMove_CutShortThenFinished(t *testing.T) {
	ctx := context.Background()
	for _, step := range []string{"moved", "moved-wal", "moved-shm"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "app.db"), filepath.Join(dir, "q.db")
			walDB(t, src)
			want, err := sqlitedb.Digest(ctx, src)
			require.NoError(t, err)
			stop := sqlitedb.CrashAt(func(s string) bool { return s == step })
			err = sqlitedb.Move(ctx, src, dst)
			stop()
			require.ErrorIs(t, err, sqlitedb.ErrTestCrash)
			assert.NoFileExists(t, src, "the file moves first")
			assert.FileExists(t, dst)
			if step != "moved-shm" {
				assert.FileExists(t, src+"-shm", "the move is cut short")
			}
			require.NoError(t, sqlitedb.Move(ctx, src, dst))
			require.NoError(t, sqlitedb.Move(ctx, src, dst), "done before: nothing to do")
			left, err := sqlitedb.Parts(src)
			require.NoError(t, err)
			assert.Empty(t, left)
			require.NoError(t, sqlitedb.CheckDigest(ctx, dst, want))
		})
	}
}

// TestDigest_CopyEqualsOriginal_ChangesAreCaught: the archived copy
// (Copy, self-contained) has the digest of the database with its -wal;
// VACUUM (another page layout) keeps it; every change of content changes
// it: a row edited at the same size, a real moved by one ulp, an integer
// stored as text, a row added or deleted, an index added, a table added.
func TestDigest_CopyEqualsOriginal_ChangesAreCaught(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	walDB(t, src)
	want, err := sqlitedb.Digest(ctx, src)
	require.NoError(t, err)
	archived := filepath.Join(dir, "archived.db")
	_, err = sqlitedb.Copy(ctx, src, archived)
	require.NoError(t, err)
	require.NoError(t, sqlitedb.CheckDigest(ctx, archived, want), "the archived copy matches the live database with its -wal")

	changes := map[string]string{
		"vacuum (no change)":  "VACUUM",
		"same-size edit":      "UPDATE a SET v = 'FIRST' WHERE id = 1",
		"real by one ulp":     "UPDATE a SET r = 1.5000000000000002 WHERE id = 1",
		"integer as text":     "UPDATE a SET v = 7 WHERE id = 2",
		"row added":           "INSERT INTO a (v) VALUES ('new')",
		"row deleted":         "DELETE FROM a WHERE id = 3",
		"index added":         "CREATE INDEX ar ON a (r)",
		"table added":         "CREATE TABLE z (id INTEGER)",
		"blob byte":           "UPDATE a SET b = x'01' WHERE id = 1",
		"null for empty text": "UPDATE a SET v = NULL WHERE id = 4",
	}
	for what, stmt := range changes {
		p := filepath.Join(dir, "t.db")
		_ = os.Remove(p)
		_, err := sqlitedb.Copy(ctx, src, p)
		require.NoError(t, err)
		db := openDB(t, p, stmt)
		require.NoError(t, db.Close())
		err = sqlitedb.CheckDigest(ctx, p, want)
		if what == "vacuum (no change)" {
			assert.NoError(t, err, what)
			continue
		}
		var me *sqlitedb.DigestMismatchError
		assert.ErrorAs(t, err, &me, what)
	}

	// A damaged copy is a CorruptError, not a digest.
	bad := filepath.Join(dir, "bad.db")
	data, err := os.ReadFile(archived)
	require.NoError(t, err)
	for i := 4096; i < 4108; i++ {
		data[i] ^= 0xa5
	}
	require.NoError(t, os.WriteFile(bad, data, 0o600))
	_, err = sqlitedb.Digest(ctx, bad)
	var ce *sqlitedb.CorruptError
	assert.ErrorAs(t, err, &ce)
}

// TestMove_KilledAtRandomInstants kills a moving process (quarantine,
// then restore, back and forth) at random instants: Move called again
// always finishes the move (never a conflict with its own parts), and
// the database, with what only its -wal holds, keeps its digest.
func TestMove_KilledAtRandomInstants(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "app.db"), filepath.Join(dir, "q.db")
	walDB(t, a)
	want, err := sqlitedb.Digest(ctx, a)
	require.NoError(t, err)
	moveCmd := func(src, dst string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FLEETSAFE_SQLITE_MOVE_SRC="+src, "FLEETSAFE_SQLITE_MOVE_DST="+dst)
		return cmd
	}
	start := time.Now()
	require.NoError(t, moveCmd(a, b).Run())
	span := time.Since(start)
	src, dst := b, a
	killed, split := 0, 0
	// 16 rounds, more (up to 64) until a kill fell within a move and one
	// between two renames (the load can change after span was measured).
	for i := 0; i < 16 || ((split == 0 || killed == 0) && i < 64); i++ {
		cmd := moveCmd(src, dst)
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(rand.Int64N(int64(span))))
		_ = cmd.Process.Kill()
		if cmd.Wait() != nil {
			killed++
		}
		if l, _ := sqlitedb.Parts(src); len(l) > 0 {
			if r, _ := sqlitedb.Parts(dst); len(r) > 0 {
				split++
			}
		}
		require.NoError(t, sqlitedb.Move(ctx, src, dst), "a killed move is finished")
		left, err := sqlitedb.Parts(src)
		require.NoError(t, err)
		require.Empty(t, left)
		require.FileExists(t, dst+"-wal", "the -wal moved with the file")
		require.NoError(t, sqlitedb.CheckDigest(ctx, dst, want))
		src, dst = dst, src
	}
	t.Logf("%d moves killed, %d left split between both names", killed, split)
	assert.Positive(t, killed)
	// How many kills fell between two renames depends on timing; the
	// split state itself is proved by TestMove_CutShortThenFinished.
}
