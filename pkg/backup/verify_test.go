package backup_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// now is the running test's clock: the backups it writes are dated from
// it, and Verify is given it. Each test using it starts with resetNow: a
// clock read once, when the package started, fell more than the 5
// minutes of clock skew Verify allows behind the real mtimes of files the
// tools write (pg_dump, gzip) once the package had run that long (minutes
// under -race on a loaded machine), and those read as dated in the
// future.
var now = time.Now()

// resetNow sets now to the current time, at the start of a test.
func resetNow() { now = time.Now() }

// backedUp is a fleet with two nights of good backups per instance.
func backedUp(t *testing.T, names ...string) (*fleettest.Fleet, map[string]map[string]string) {
	t.Helper()
	f := fleettest.NewSpec(t, fleettest.Spec{Names: names, DB: true, Backups: true})
	latest := map[string]map[string]string{}
	for _, n := range names {
		_, err := f.WriteBackups(context.Background(), n, now.Add(-25*time.Hour))
		require.NoError(t, err)
		latest[n], err = f.WriteBackups(context.Background(), n, now.Add(-1*time.Hour))
		require.NoError(t, err)
	}
	return f, latest
}

func verify(t *testing.T, f *fleettest.Fleet, opts backup.Options) *backup.Report {
	t.Helper()
	opts.Now = now
	opts.Discovery = f.Options()
	rep, err := backup.Verify(context.Background(), f.Layout, opts)
	require.NoError(t, err)
	return rep
}

// check returns the status of one check of one instance and component.
func check(t *testing.T, rep *backup.Report, name, component, check string) backup.CheckResult {
	t.Helper()
	for _, i := range rep.Instances {
		if i.Name != name {
			continue
		}
		for _, c := range i.Checks {
			if c.Component == component && c.Check == check {
				return c
			}
		}
	}
	t.Fatalf("no %s check for %s/%s", check, name, component)
	return backup.CheckResult{}
}

func status(t *testing.T, rep *backup.Report, name string) string {
	for _, i := range rep.Instances {
		if i.Name == name {
			return i.Status
		}
	}
	t.Fatalf("no instance %s", name)
	return ""
}

func TestVerify_GoodBackupsPass(t *testing.T) {
	resetNow()
	f, _ := backedUp(t, "acme", "globex")
	rep := verify(t, f, backup.Options{})
	require.Equal(t, backup.Summary{Instances: 2, OK: 2}, rep.Summary, "%+v", rep.Instances)
	for _, c := range []string{backup.CheckPresent, backup.CheckFresh, backup.CheckSize, backup.CheckShrink, backup.CheckChecksum, backup.CheckFormat} {
		assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "database", c).Status, c)
	}
	assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "data", backup.CheckFormat).Status)
	assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "config", backup.CheckFormat).Status)
	assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "logs", backup.CheckCoverage).Status, "backup: false covers")
	assert.Empty(t, rep.Orphans)
}

// TestVerify_BrokenBackupsAreCaught breaks one thing at a time and expects
// exactly the check that names it to fail.
func TestVerify_BrokenBackupsAreCaught(t *testing.T) {
	resetNow()
	cases := []struct {
		name      string
		component string
		check     string
		finding   any
		breakIt   func(t *testing.T, f *fleettest.Fleet, files map[string]string)
	}{
		{"stale", "data", backup.CheckFresh, &backup.StaleError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			// The newest data backup is three days old: the job stopped.
			for _, p := range glob(t, f, "data-*.tar.zst") {
				old := now.Add(-72 * time.Hour)
				require.NoError(t, os.Chtimes(p, old, old))
			}
		}},
		{"empty", "config", backup.CheckSize, &backup.TooSmallError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			require.NoError(t, os.Truncate(files["config"], 0))
		}},
		{"below min_size", "database", backup.CheckSize, &backup.TooSmallError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			rewrite(t, files["database"], func(b []byte) []byte { return b[:500] }, true)
		}},
		{"shrunk", "data", backup.CheckShrink, &backup.ShrinkError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			// Half the data directory is no longer backed up.
			dir := f.Path("data", "acme")
			require.NoError(t, os.RemoveAll(filepath.Join(dir, "depot")))
			out, err := f.WriteBackups(context.Background(), "acme", now.Add(-10*time.Minute))
			require.NoError(t, err)
			_ = out
		}},
		{"bad checksum", "database", backup.CheckChecksum, &backup.ChecksumError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			rewrite(t, files["database"], func(b []byte) []byte { b[len(b)-10] ^= 0xff; return b }, false)
		}},
		{"missing sidecar", "database", backup.CheckChecksum, &backup.ChecksumError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			require.NoError(t, os.Remove(files["database"]+".sha256"))
		}},
		{"malformed sidecar", "database", backup.CheckChecksum, &backup.ChecksumError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			require.NoError(t, os.WriteFile(files["database"]+".sha256", []byte("not a checksum\n"), 0o644))
		}},
		{"truncated dump", "database", backup.CheckFormat, &backup.FormatError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			rewrite(t, files["database"], func(b []byte) []byte { return b[:len(b)-300] }, true)
		}},
		{"corrupted data block", "database", backup.CheckFormat, &backup.FormatError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			rewrite(t, files["database"], func(b []byte) []byte {
				for i := len(b) - 400; i < len(b)-380; i++ {
					b[i] ^= 0x55
				}
				return b
			}, true)
		}},
		{"truncated tar.zst", "data", backup.CheckFormat, &backup.FormatError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			rewrite(t, files["data"], func(b []byte) []byte { return b[:len(b)*2/3] }, false)
		}},
		{"truncated tar.gz", "config", backup.CheckFormat, &backup.FormatError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			rewrite(t, files["config"], func(b []byte) []byte { return b[:len(b)-20] }, false)
		}},
		{"missing component backup", "config", backup.CheckPresent, &backup.MissingError{}, func(t *testing.T, f *fleettest.Fleet, files map[string]string) {
			for _, p := range glob(t, f, "config-*") {
				require.NoError(t, os.Remove(p))
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, latest := backedUp(t, "acme", "globex")
			c.breakIt(t, f, latest["acme"])
			rep := verify(t, f, backup.Options{})
			got := check(t, rep, "acme", c.component, c.check)
			assert.Equal(t, backup.StatusFailed, got.Status, "%+v", got)
			assert.NotEmpty(t, got.Hint)
			assert.IsType(t, c.finding, got.Finding)
			assert.Equal(t, backup.StatusFailed, status(t, rep, "acme"))
			assert.Equal(t, backup.StatusOK, status(t, rep, "globex"), "the other instance stays ok")
			assert.Equal(t, 1, rep.Summary.Failed)
		})
	}
}

func glob(t *testing.T, f *fleettest.Fleet, pattern string) []string {
	m, err := filepath.Glob(filepath.Join(f.BackupDir("acme"), pattern))
	require.NoError(t, err)
	require.NotEmpty(t, m)
	return m
}

// rewrite changes a backup in place, keeping its mtime; with resum its
// sidecar is rewritten too, so that only the format check can notice.
func rewrite(t *testing.T, path string, change func([]byte) []byte, resum bool) {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, change(data), 0o644))
	if resum {
		cmd := exec.Command("sh", "-c", fmt.Sprintf("cd %q && sha256sum %q > %q", filepath.Dir(path), filepath.Base(path), filepath.Base(path)+".sha256"))
		require.NoError(t, cmd.Run())
	}
	require.NoError(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
}

func TestVerify_Uncovered(t *testing.T) {
	resetNow()
	f, _ := backedUp(t, "acme")
	// The same layout without the config rule.
	data, err := os.ReadFile(f.LayoutFile)
	require.NoError(t, err)
	text := string(data)
	i := strings.Index(text, "  - component: config")
	j := strings.Index(text, "  - component: data")
	l, err := instance.ParseLayout([]byte(text[:i]+text[j:]), "uncovered.yml")
	require.NoError(t, err)
	rep, err := backup.Verify(context.Background(), l, backup.Options{Now: now, Discovery: f.Options()})
	require.NoError(t, err)
	got := check(t, rep, "acme", "config", backup.CheckCoverage)
	assert.Equal(t, backup.StatusFailed, got.Status)
	var ue *backup.UncoveredError
	assert.True(t, errors.As(got.Finding, &ue))
}

func TestVerify_PlainDumps(t *testing.T) {
	resetNow()
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	dir := filepath.Join(f.Root, "plain")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "acme"), 0o755))
	good := filepath.Join(dir, "acme", "db-1.sql")
	cmd := exec.Command("pg_dump", "--format=plain", "--file="+good, "--dbname="+f.Database("acme"))
	cmd.Env = f.PG.Env()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	yaml := fleettest.LayoutYAML(f.Root, f.App, true) + "backups:\n  - component: database\n    path: " + dir + "/{name}/db-*.sql\n    format: pg_plain\n"
	l, err := instance.ParseLayout([]byte(yaml), "plain.yml")
	require.NoError(t, err)
	run := func() backup.CheckResult {
		rep, err := backup.Verify(context.Background(), l, backup.Options{Now: now, Discovery: f.Options(), RestoreTest: 1})
		require.NoError(t, err)
		check(t, rep, "acme", "database", backup.CheckRestore)
		return check(t, rep, "acme", "database", backup.CheckFormat)
	}
	assert.Equal(t, backup.StatusOK, run().Status)

	// Newer pg_dump releases end with \unrestrict after the marker.
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(good, append(data, []byte("\\unrestrict abcDEF123\n\n")...), 0o644))
	assert.Equal(t, backup.StatusOK, run().Status)

	// Cut before the marker: the dump stopped mid-way.
	i := strings.LastIndex(string(data), "-- PostgreSQL database dump complete")
	require.NoError(t, os.WriteFile(good, data[:i-200], 0o644))
	got := run()
	assert.Equal(t, backup.StatusFailed, got.Status)
	assert.Contains(t, got.Detail, "dump complete")
}

func TestVerify_RestoreTestLeavesNoScratchDatabase(t *testing.T) {
	resetNow()
	f, latest := backedUp(t, "acme", "globex", "initech")
	state := filepath.Join(t.TempDir(), "state.json")
	seen := map[string]bool{}
	for run := 0; run < 3; run++ {
		rep := verify(t, f, backup.Options{RestoreTest: 1, StateFile: state})
		for _, n := range []string{"acme", "globex", "initech"} {
			c := check(t, rep, n, "database", backup.CheckRestore)
			if c.Status == backup.StatusOK {
				seen[n] = true
				assert.Contains(t, c.Detail, "row counts match")
			}
		}
		now = now.Add(time.Second)
	}
	assert.Len(t, seen, 3, "every instance got its turn in three runs")
	assertNoScratch(t, f)

	// A dump that fails to restore: the scratch database is dropped anyway.
	rewrite(t, latest["acme"]["database"], func(b []byte) []byte {
		// Sound structure, but the data is copied into a table that does
		// not exist (same length, so every offset stays right).
		return []byte(strings.Replace(string(b), "COPY public.content ", "COPY public.contenY ", 1))
	}, true)
	rep := verify(t, f, backup.Options{Names: []string{"acme"}, RestoreTest: 1})
	c := check(t, rep, "acme", "database", backup.CheckRestore)
	assert.Equal(t, backup.StatusFailed, c.Status, c.Detail)
	assertNoScratch(t, f)
}

func assertNoScratch(t *testing.T, f *fleettest.Fleet) {
	t.Helper()
	db, err := f.PG.Open(context.Background(), "postgres")
	require.NoError(t, err)
	defer db.Close()
	// Only this test's scratch databases: other runs may share the server.
	require.NotEmpty(t, scratchNames(), "no scratch database was created")
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM pg_database WHERE datname = ANY($1)", pq.Array(scratchNames())).Scan(&n))
	assert.Zero(t, n, "scratch databases left behind")
}

// scratchNames lists the scratch databases created by this test binary.
var scratchNames, _ = backup.TrackScratch()

func TestVerify_RestoreTestRowDrift(t *testing.T) {
	resetNow()
	f, _ := backedUp(t, "acme")
	db, err := f.PG.Open(context.Background(), f.Database("acme"))
	require.NoError(t, err)
	_, err = db.Exec("INSERT INTO public.users (email) VALUES ('new@acme.example')")
	db.Close()
	require.NoError(t, err)
	rep := verify(t, f, backup.Options{RestoreTest: 1})
	c := check(t, rep, "acme", "database", backup.CheckRestore)
	assert.Equal(t, backup.StatusWarning, c.Status)
	assert.Contains(t, c.Detail, "public.users 1 rows (live 2)")
}

func TestVerify_Orphans(t *testing.T) {
	resetNow()
	f, _ := backedUp(t, "acme")
	_, err := f.WriteBackups(context.Background(), "acme", now)
	require.NoError(t, err)
	// Backups of an instance that is gone.
	require.NoError(t, os.Rename(f.BackupDir("acme"), f.BackupDir("departed")))
	_, err = f.WriteBackups(context.Background(), "acme", now)
	require.NoError(t, err)
	rep := verify(t, f, backup.Options{})
	require.NotEmpty(t, rep.Orphans)
	assert.Equal(t, "departed", rep.Orphans[0].Name)
	assert.Equal(t, 0, rep.Summary.Failed, "orphans are listed, not failures")
}

func TestVerify_NamesSubset(t *testing.T) {
	resetNow()
	f, _ := backedUp(t, "acme", "globex")
	rep := verify(t, f, backup.Options{Names: []string{"globex"}})
	require.Len(t, rep.Instances, 1)
	assert.Equal(t, "globex", rep.Instances[0].Name)
	_, err := backup.Verify(context.Background(), f.Layout, backup.Options{Names: []string{"nobody"}, Discovery: f.Options()})
	assert.Error(t, err)
	_, err = backup.Verify(context.Background(), f.Layout, backup.Options{Names: []string{"a*"}, Discovery: f.Options()})
	var ie *instance.InvalidNameError
	assert.ErrorAs(t, err, &ie)
}
