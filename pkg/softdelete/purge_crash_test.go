package softdelete_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

func databaseExists(t *testing.T, pg pgdump.Conn, name string) bool {
	t.Helper()
	db, err := pg.Open(context.Background(), "postgres")
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n))
	return n > 0
}

func dbMove(t *testing.T, res *softdelete.Result) softdelete.QuarantineMove {
	t.Helper()
	for _, m := range res.Quarantined {
		if m.Type == "postgresql" {
			return m
		}
	}
	t.Fatal("no quarantined database")
	return softdelete.QuarantineMove{}
}

// A quarantined database: the tombstone says purging before anything
// changes, the database takes its purging name before DROP, a run
// stopped there never leaves a "quarantine" a restore could take, and the
// next run finishes.
func TestPurge_DatabaseJournalFirst(t *testing.T) {
	f := fleettest.New(t, true, "acme", "globex")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	other := f.Snapshot(t, "globex")
	res := deleted(t, f, archives, "acme")
	m := dbMove(t, res)
	q := quarantineOf(t, res, "data")
	var steps []string
	func() {
		defer func() {
			if r := recover(); r != nil && r != "crash" {
				panic(r)
			}
		}()
		_, _ = purgeAfter(t, archives, f, res, func(r *softdelete.PurgeRequest) {
			r.AfterStep = func(step string) {
				steps = append(steps, step)
				ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
				require.NoError(t, err)
				switch step {
				case "journal":
					assert.Equal(t, softdelete.StatePurging, ts.State, "journal first")
					assert.True(t, databaseExists(t, f.PG, m.To), "nothing changed before the journal")
					assert.DirExists(t, q)
				case "rename":
					assert.False(t, databaseExists(t, f.PG, m.To))
					assert.True(t, databaseExists(t, f.PG, softdelete.PurgingDatabase(m.To)))
					_, err := os.Lstat(q)
					assert.True(t, errors.Is(err, os.ErrNotExist))
					panic("crash")
				}
			}
		})
	}()
	require.Equal(t, []string{"journal", "rename"}, steps)

	_, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Source: softdelete.SourceQuarantine, Options: f.Options()})
	assert.Error(t, err, "a quarantine being purged is not a source for a restore")

	out, err := purgeAfter(t, archives, f, res, nil)
	require.NoError(t, err)
	assert.True(t, out.Changed)
	assert.Len(t, out.Purged, 5)
	for _, p := range out.Purged {
		assert.Contains(t, p.Reason, "interrupted purge")
	}
	assert.False(t, databaseExists(t, f.PG, softdelete.PurgingDatabase(m.To)))
	ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StatePurged, ts.State)
	assert.Equal(t, other, f.Snapshot(t, "globex"))

	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, softdelete.SourceArchive, rr.Source)
}

// TestPurge_SIGKILLChild is the purge process that
// TestPurge_SIGKILLAtRandomInstants kills; it does nothing on its own.
func TestPurge_SIGKILLChild(t *testing.T) {
	dir := os.Getenv("FLEETSAFE_PURGE_CHILD")
	if dir == "" {
		t.Skip("run by TestPurge_SIGKILLAtRandomInstants")
	}
	now, err := time.Parse(time.RFC3339Nano, os.Getenv("FLEETSAFE_PURGE_NOW"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := instance.LoadLayoutFile(os.Getenv("FLEETSAFE_PURGE_LAYOUT"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := softdelete.PurgeReport(context.Background(), softdelete.PurgeRequest{Layouts: []*instance.Layout{l}, ArchiveDir: dir, KeepLast: 1, Now: now}); err != nil {
		t.Fatal(err)
	}
}

// A purge killed at random instants and run again ends fully purged,
// and nothing outside the quarantine is touched: not a live instance,
// not the quarantine of a deletion still within retention.
func TestPurge_SIGKILLAtRandomInstants(t *testing.T) {
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme", "globex", "initech"}, DB: true, Files: 200})
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	held, err := softdelete.Delete(ctx, f.Layout, softdelete.Request{Name: "globex", ArchiveDir: archives,
		Reason: "held", RetentionDays: 3650, Options: f.Options()})
	require.NoError(t, err)
	heldTrees := treesOf(t, held)
	live := f.Snapshot(t, "initech")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills, midway := 0, 0
	// The kill comes at a random instant up to maxDelay after the start;
	// a purge may end sooner. Rounds go on (up to 8, the delay halved
	// each time a round saw no kill) until at least one purge was killed.
	maxDelay := 120_000
	for round := 0; round < 2 || (kills == 0 && round < 8); round++ {
		killsBefore := kills
		if round > 0 {
			require.NoError(t, f.AddInstance(ctx, "acme"))
		}
		res := deleted(t, f, archives, "acme")
		m := dbMove(t, res)
		now := res.Tombstone.PurgeAfter.Add(time.Hour)
		for attempt := 0; ; attempt++ {
			cmd := exec.Command(os.Args[0], "-test.run=^TestPurge_SIGKILLChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "FLEETSAFE_PURGE_CHILD="+archives, "FLEETSAFE_PURGE_LAYOUT="+f.LayoutFile, "FLEETSAFE_PURGE_NOW="+now.Format(time.RFC3339Nano))
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())
			if attempt < 8 {
				time.Sleep(time.Duration(rng.IntN(maxDelay)) * time.Microsecond)
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
			err := cmd.Wait()
			if err == nil {
				break
			}
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, out.String())
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				kills++
				if ts, err := softdelete.ReadTombstone(res.Tombstone.Path); err == nil && ts.State == softdelete.StatePurging {
					midway++
				}
				continue
			}
			t.Fatalf("round %d attempt %d: purge failed: %v\n%s", round, attempt, err, out.String())
		}
		ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
		require.NoError(t, err)
		assert.Equal(t, softdelete.StatePurged, ts.State, "round %d", round)
		for _, q := range res.Quarantined {
			if q.Type == "postgresql" {
				continue
			}
			for _, p := range []string{filepath.Dir(q.To), filepath.Dir(q.To) + softdelete.PurgingSuffix} {
				_, err := os.Lstat(p)
				assert.True(t, errors.Is(err, os.ErrNotExist), "round %d: %s is gone", round, p)
			}
		}
		assert.False(t, databaseExists(t, f.PG, m.To), "round %d", round)
		assert.False(t, databaseExists(t, f.PG, softdelete.PurgingDatabase(m.To)), "round %d", round)
		assert.Equal(t, live, f.Snapshot(t, "initech"), "round %d: the live instance is untouched", round)
		assert.Equal(t, heldTrees, treesOf(t, held), "round %d: the held quarantine is untouched", round)
		assert.True(t, databaseExists(t, f.PG, dbMove(t, held).To), "round %d: the held database is there", round)
		_, err = os.Stat(res.Archive.Path)
		assert.NoError(t, err, "round %d: the newest archive stays", round)
		if kills == killsBefore {
			maxDelay = max(maxDelay/2, 1000)
		}
	}
	require.Positive(t, kills, "the test killed no purge")
	t.Logf("%d purge processes killed, %d of them with the tombstone in state purging", kills, midway)
}

// Two purges at once: each item is removed and listed once, by one of
// them; the other refuses on the lock or finds nothing left to do.
func TestPurge_TwoConcurrentRuns(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res := deleted(t, f, archives, "acme")
	type outcome struct {
		out *softdelete.PurgeResult
		err error
	}
	done := make(chan outcome, 2)
	for range 2 {
		go func() {
			out, err := softdelete.PurgeReport(context.Background(), softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 1,
				PG: f.PG, Now: res.Tombstone.PurgeAfter.Add(time.Hour)})
			done <- outcome{out, err}
		}()
	}
	seen := map[string]int{}
	for range 2 {
		o := <-done
		if o.err != nil {
			var refused *softdelete.RefusedError
			require.ErrorAs(t, o.err, &refused)
			assert.Contains(t, o.err.Error(), "lock")
		}
		if o.out != nil {
			for _, p := range o.out.Purged {
				seen[p.Path]++
			}
		}
	}
	assert.Len(t, seen, len(res.Quarantined))
	for p, n := range seen {
		assert.Equal(t, 1, n, "%s listed once", p)
	}
	ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StatePurged, ts.State)
}
