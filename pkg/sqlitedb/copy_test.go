package sqlitedb_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

func openDB(t testing.TB, path string, pragmas ...string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_busy_timeout=10000")
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	for _, p := range pragmas {
		_, err := db.Exec(p)
		require.NoError(t, err, p)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// counts returns the rows of tables a and b of a copy; every writer
// transaction inserts one row into each, so a consistent copy has as many
// in both.
func counts(t testing.TB, path string) (a, b int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.QueryRow("SELECT (SELECT COUNT(*) FROM a), (SELECT COUNT(*) FROM b)").Scan(&a, &b))
	return a, b
}

// TestMain lets the test binary act as the writer process of
// TestCopy_WhileAWriterRuns: FLEETSAFE_SQLITE_WRITER=<db> <journal mode>.
func TestMain(m *testing.M) {
	if path := os.Getenv("FLEETSAFE_SQLITE_WRITER"); path != "" {
		os.Exit(writer(path))
	}
	if src := os.Getenv("FLEETSAFE_SQLITE_COPY_SRC"); src != "" {
		if _, err := sqlitedb.Copy(context.Background(), src, os.Getenv("FLEETSAFE_SQLITE_COPY_DST")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if src := os.Getenv("FLEETSAFE_SQLITE_MOVE_SRC"); src != "" {
		// A pause after each rename, so that kills land between them
		// too (each rename itself is atomic).
		sqlitedb.CrashAt(func(string) bool { time.Sleep(3 * time.Millisecond); return false })
		if err := sqlitedb.Move(context.Background(), src, os.Getenv("FLEETSAFE_SQLITE_MOVE_DST")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writer inserts, until killed, one row into a and one into b per
// transaction, a millisecond apart, with a blob large enough that transactions span pages.
func writer(path string) int {
	db, err := sql.Open("sqlite", "file:"+path+"?_busy_timeout=10000")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	db.SetMaxOpenConns(1)
	pad := make([]byte, 3000)
	for i := 0; ; i++ {
		tx, err := db.Begin()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := tx.Exec("INSERT INTO a (v) VALUES (?)", pad); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := tx.Exec("INSERT INTO b (v) VALUES (?)", pad); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := tx.Commit(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if i == 0 {
			fmt.Println("writing")
		}
		// A breath between transactions, as an application has: a
		// rollback-journal database is readable only between them.
		time.Sleep(time.Millisecond)
	}
}

// TestCopy_WhileAWriterRuns copies a database while another process
// commits transactions into it as fast as it can, in WAL and in
// rollback-journal mode: each copy passes integrity_check, is the
// database as of one commit (as many rows in a as in b), holds rows
// committed during the run, and is self-contained (no -wal beside it).
func TestCopy_WhileAWriterRuns(t *testing.T) {
	for _, mode := range []string{"WAL", "DELETE"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			live := filepath.Join(dir, "live.db")
			db := openDB(t, live, "PRAGMA journal_mode = "+mode,
				"CREATE TABLE a (id INTEGER PRIMARY KEY, v BLOB)", "CREATE TABLE b (id INTEGER PRIMARY KEY, v BLOB)")
			db.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "FLEETSAFE_SQLITE_WRITER="+live)
			out, err := cmd.StdoutPipe()
			require.NoError(t, err)
			var stderr limitedBuffer
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			buf := make([]byte, 8)
			_, err = io.ReadAtLeast(out, buf, 7) // "writing": the first commit is in
			require.NoError(t, err, stderr.String())

			var last int64
			for i := range 4 {
				time.Sleep(30 * time.Millisecond)
				dst := filepath.Join(dir, "copy"+strconv.Itoa(i)+".db")
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a bound against a hang, wide for a loaded machine
				res, err := sqlitedb.Copy(ctx, live, dst)
				cancel()
				require.NoError(t, err)
				assert.Positive(t, res.Pages)
				require.NoError(t, sqlitedb.Check(context.Background(), dst))
				a, b := counts(t, dst)
				assert.Equal(t, a, b, "the copy is the database as of one commit")
				assert.Positive(t, a)
				assert.GreaterOrEqual(t, a, last, "each copy is at least as new as the one before")
				last = a
				h, err := sqlitedb.ReadHeader(dst)
				require.NoError(t, err)
				assert.False(t, h.WAL, "the copy is self-contained")
				assert.NoFileExists(t, dst+"-wal")
			}
			require.Nil(t, cmd.ProcessState, "the writer was still running: %s", stderr.String())
		})
	}
}

// TestCopy_HasWhatIsOnlyInTheWAL: rows committed but not yet checkpointed
// live only in the -wal. A plain copy of the database file misses them
// (shown here, so that the test can fail); Copy has them.
func TestCopy_HasWhatIsOnlyInTheWAL(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	db := openDB(t, live, "PRAGMA journal_mode = WAL", "PRAGMA wal_autocheckpoint = 0",
		"CREATE TABLE a (id INTEGER PRIMARY KEY, v BLOB)", "CREATE TABLE b (id INTEGER PRIMARY KEY, v BLOB)",
		"PRAGMA wal_checkpoint(TRUNCATE)")
	for range 50 {
		_, err := db.Exec("INSERT INTO a (v) VALUES (randomblob(100)); INSERT INTO b (v) VALUES (randomblob(100))")
		require.NoError(t, err)
	}
	st, err := os.Stat(live + "-wal")
	require.NoError(t, err)
	require.Positive(t, st.Size(), "the rows are in the -wal")

	naive := filepath.Join(dir, "naive.db")
	data, err := os.ReadFile(live)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(naive, data, 0o644))
	a, _ := counts(t, naive)
	assert.Zero(t, a, "a plain copy of the file misses the rows still in the -wal")

	dst := filepath.Join(dir, "copy.db")
	_, err = sqlitedb.Copy(context.Background(), live, dst)
	require.NoError(t, err)
	a, b := counts(t, dst)
	assert.Equal(t, int64(50), a)
	assert.Equal(t, int64(50), b)
}

// TestCopy_Refuses: a missing source is never created (no empty copy), an
// existing destination is never overwritten, a file that is not a SQLite
// database is not copied; nothing is left behind.
func TestCopy_Refuses(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	_, err := sqlitedb.Copy(ctx, filepath.Join(dir, "missing.db"), filepath.Join(dir, "out.db"))
	require.Error(t, err)
	assert.NoFileExists(t, filepath.Join(dir, "missing.db"))

	live := filepath.Join(dir, "live.db")
	openDB(t, live, "CREATE TABLE a (id INTEGER)").Close()
	existing := filepath.Join(dir, "existing.db")
	require.NoError(t, os.WriteFile(existing, []byte("keep"), 0o644))
	_, err = sqlitedb.Copy(ctx, live, existing)
	require.ErrorContains(t, err, "already exists")
	got, _ := os.ReadFile(existing)
	assert.Equal(t, "keep", string(got))

	text := filepath.Join(dir, "text.db")
	require.NoError(t, os.WriteFile(text, []byte("not a database at all, but long enough to have a header of a hundred bytes........................."), 0o644))
	_, err = sqlitedb.Copy(ctx, text, filepath.Join(dir, "out.db"))
	var ce *sqlitedb.CorruptError
	require.ErrorAs(t, err, &ce)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"live.db", "existing.db", "text.db"}, names, "no temporary file left")
}

// TestCopy_HostilePaths: names that a SQLite URI would read as parameters
// or escapes ("?mode=memory", "#", "%41", spaces, a newline) name the
// files they say, no other.
func TestCopy_HostilePaths(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for i, name := range []string{"a?mode=memory", "b#frag", "c%41.db", "d e.db", "f\ng.db", "-h.db", "i&vfs=unix-none"} {
		sub := filepath.Join(dir, strconv.Itoa(i))
		require.NoError(t, os.Mkdir(sub, 0o755))
		live := filepath.Join(sub, name)
		openDB(t, filepath.Join(sub, "plain.db"), "CREATE TABLE a (id INTEGER)", "CREATE TABLE b (id INTEGER)", "INSERT INTO a VALUES (1)", "INSERT INTO b VALUES (1)").Close()
		require.NoError(t, os.Rename(filepath.Join(sub, "plain.db"), live))
		dst := filepath.Join(sub, "copy of "+name)
		_, err := sqlitedb.Copy(ctx, live, dst)
		require.NoError(t, err, "%q", name)
		require.NoError(t, sqlitedb.Check(ctx, dst), "%q", name)
		ents, err := os.ReadDir(sub)
		require.NoError(t, err)
		assert.Len(t, ents, 2, "only the source and its copy in %q: %v", name, ents)
	}
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b) < 4096 {
		l.b = append(l.b, p[:min(len(p), 4096-len(l.b))]...)
	}
	return len(p), nil
}
func (l *limitedBuffer) String() string { return string(l.b) }

// TestCopy_KilledAtRandomInstants kills a copying process at random
// instants: the destination is either absent or a whole database that
// passes Check, never a part of one; the source is untouched.
func TestCopy_KilledAtRandomInstants(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	db := openDB(t, live, "PRAGMA journal_mode = WAL", "CREATE TABLE a (id INTEGER PRIMARY KEY, v BLOB)", "CREATE TABLE b (id INTEGER PRIMARY KEY, v BLOB)")
	_, err := db.Exec("BEGIN; INSERT INTO a (v) SELECT randomblob(4000) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) SELECT i FROM n); INSERT INTO b (v) SELECT v FROM a; COMMIT")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	before, err := os.ReadFile(live)
	require.NoError(t, err)
	copyCmd := func(dst string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FLEETSAFE_SQLITE_COPY_SRC="+live, "FLEETSAFE_SQLITE_COPY_DST="+dst)
		return cmd
	}
	// How long a whole copy takes here, process start included: the
	// kills fall within it.
	// The quicker of two runs (the first warms the caches).
	span := time.Hour
	for _, n := range []string{"timed1.db", "timed2.db"} {
		start := time.Now()
		require.NoError(t, copyCmd(filepath.Join(dir, n)).Run())
		span = min(span, time.Since(start))
	}
	whole, killed := 0, 0
	// 6 rounds, more (up to 24) until one kill fell within a copy: the
	// load of the machine can change after span was measured.
	for i := 0; i < 6 || (killed == 0 && i < 24); i++ {
		dst := filepath.Join(dir, "copy"+strconv.Itoa(i)+".db")
		cmd := copyCmd(dst)
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(rand.Int64N(int64(span) / int64(1+i%2)))) // within the copy, or its first half
		_ = cmd.Process.Kill()
		if err := cmd.Wait(); err == nil {
			whole++
		} else {
			killed++
		}
		if _, err := os.Stat(dst); err == nil {
			require.NoError(t, sqlitedb.Check(context.Background(), dst), "a copy at the destination is whole")
			a, b := counts(t, dst)
			assert.Equal(t, int64(2000), a)
			assert.Equal(t, a, b)
		}
	}
	t.Logf("%d copies killed, %d finished", killed, whole)
	assert.Positive(t, killed, "some copies were killed in the middle")
	after, err := os.ReadFile(live)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the source is untouched")
}
