package backup_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// run runs a real tool (tar, gzip, zstd, pg_dump) and fails the test on
// error.
func runTool(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %v: %s", name, args, out)
}

// tarGz writes a real tar.gz of dir to out, dated when.
func tarGz(t *testing.T, dir, out string, when time.Time) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(out), 0o755))
	runTool(t, nil, "tar", "-C", filepath.Dir(dir), "-czf", out, filepath.Base(dir))
	require.NoError(t, os.Chtimes(out, when, when))
}

func checks(rep *backup.Report, name, component, check string) []backup.CheckResult {
	var out []backup.CheckResult
	for _, i := range rep.Instances {
		if i.Name != name {
			continue
		}
		for _, c := range i.Checks {
			if c.Component == component && c.Check == check {
				out = append(out, c)
			}
		}
	}
	return out
}

func failedWith[T backup.Finding](t *testing.T, rep *backup.Report, name, component, check string) (T, backup.CheckResult) {
	t.Helper()
	for _, c := range checks(rep, name, component, check) {
		var f T
		if c.Status == backup.StatusFailed && errors.As(c.Finding, &f) {
			return f, c
		}
	}
	var zero T
	t.Fatalf("no failed %s/%s check of %s with a %T finding: %+v", component, check, name, zero, checks(rep, name, component, check))
	return zero, backup.CheckResult{}
}

// sharedPrefixLayout backs config up in one flat directory with
// config-{name}-*.tar.gz (acme's rule matches acme-old's files), and data
// in a directory per instance.
func sharedPrefixLayout(t *testing.T, f *fleettest.Fleet) *instance.Layout {
	yaml := fleettest.LayoutYAML(f.Root, f.App, false) + "backups:\n" +
		"  - component: config\n    path: " + f.Root + "/flat/config-{name}-*.tar.gz\n    format: tar_gz\n    max_age: 26h\n" +
		"  - component: data\n    path: " + f.Root + "/backups/{name}/data-*.tar.gz\n    format: tar_gz\n    max_age: 26h\n"
	l, err := instance.ParseLayout([]byte(yaml), "shared.yml")
	require.NoError(t, err)
	return l
}

// TestVerify_SharedPrefixNeverCreditsAnotherInstance: acme's own config
// backups are ten days old; acme-old's, fresh, match acme's rule too. acme
// must not be fresh thanks to them, whether acme-old is present, gone
// with backups of its own, or gone and soft-deleted (archive_dir).
func TestVerify_SharedPrefixNeverCreditsAnotherInstance(t *testing.T) {
	resetNow()
	for _, variant := range []string{"present", "orphan with its own backups", "soft-deleted"} {
		t.Run(variant, func(t *testing.T) {
			f := fleettest.New(t, false, "acme", "acme-old")
			l := sharedPrefixLayout(t, f)
			stamp := func(d time.Time) string { return d.UTC().Format("20060102T150405") }
			old, fresh := now.Add(-240*time.Hour), now.Add(-time.Hour)
			acmeOwn := filepath.Join(f.Root, "flat", "config-acme-"+stamp(old)+".tar.gz")
			theirs := filepath.Join(f.Root, "flat", "config-acme-old-"+stamp(fresh)+".tar.gz")
			tarGz(t, f.Path("config", "acme"), acmeOwn, old)
			tarGz(t, f.Path("config", "acme-old"), theirs, fresh)
			for _, n := range []string{"acme", "acme-old"} {
				tarGz(t, f.Path("data", n), filepath.Join(f.Root, "backups", n, "data-"+stamp(fresh)+".tar.gz"), fresh)
			}
			opts := backup.Options{Now: now, Discovery: f.Options()}
			switch variant {
			case "orphan with its own backups":
				removeInstance(t, f, "acme-old")
			case "soft-deleted":
				removeInstance(t, f, "acme-old")
				require.NoError(t, os.RemoveAll(filepath.Join(f.Root, "backups", "acme-old")))
				opts.ArchiveDir = filepath.Join(f.Root, "archives")
				require.NoError(t, os.MkdirAll(filepath.Join(opts.ArchiveDir, "acme-old"), 0o700))
			}
			rep, err := backup.Verify(context.Background(), l, opts)
			require.NoError(t, err)

			stale, c := failedWith[*backup.StaleError](t, rep, "acme", "config", backup.CheckFresh)
			assert.Equal(t, acmeOwn, stale.Path, "acme's freshness is measured on its own backup")
			assert.Equal(t, acmeOwn, c.File)
			amb, c := failedWith[*backup.AmbiguousError](t, rep, "acme", "config", backup.CheckOwner)
			assert.Equal(t, theirs, amb.Path)
			assert.Equal(t, []string{"acme", "acme-old"}, amb.Names)
			assert.Contains(t, c.Detail, theirs)
			assert.Contains(t, c.Detail, "line ")
			assert.Contains(t, c.Detail, f.Root+"/flat/config-{name}-*.tar.gz")
			assert.NotEmpty(t, c.Hint)
			assert.Equal(t, backup.StatusFailed, status(t, rep, "acme"))
			require.Len(t, rep.Warnings, 1, "the flat rule is named as one where names run on")
			assert.Contains(t, rep.Warnings[0], f.Root+"/flat/config-{name}-*.tar.gz")
			if variant == "orphan with its own backups" {
				require.Len(t, rep.Orphans, 1)
				assert.Equal(t, backup.Orphan{Name: "acme-old", Component: "data",
					Files: []string{filepath.Join(f.Root, "backups", "acme-old", "data-"+stamp(fresh)+".tar.gz")}}, rep.Orphans[0])
			}
			if variant == "present" {
				// Nor is acme-old credited with it: it has no config backup of its own.
				failedWith[*backup.MissingError](t, rep, "acme-old", "config", backup.CheckPresent)
				failedWith[*backup.AmbiguousError](t, rep, "acme-old", "config", backup.CheckOwner)
			}
			// Asking for acme alone changes nothing: ownership is decided
			// against every instance of the host.
			opts.Names = []string{"acme"}
			rep, err = backup.Verify(context.Background(), l, opts)
			require.NoError(t, err)
			failedWith[*backup.AmbiguousError](t, rep, "acme", "config", backup.CheckOwner)
		})
	}
}

// removeInstance deletes an instance's components by hand (as a careless
// operator would), leaving its backups.
func removeInstance(t *testing.T, f *fleettest.Fleet, name string) {
	t.Helper()
	for _, c := range []string{"config", "data", "logs"} {
		require.NoError(t, os.RemoveAll(f.Path(c, name)))
	}
	require.NoError(t, os.RemoveAll(filepath.Dir(f.Path("data", name))))
	require.NoError(t, os.Remove(filepath.Join(f.SystemdDir, "multi-user.target.wants", f.App+"@"+name+".service")))
}

// TestVerify_DumpOfAnotherDatabase: globex's dump, complete and with a
// matching sidecar, lands in acme's backups as the newest. It is a finding
// naming both databases, and never acme's newest: acme's freshness, size,
// format and test restore are those of acme's own dump.
func TestVerify_DumpOfAnotherDatabase(t *testing.T) {
	resetNow()
	f, latest := backedUp(t, "acme", "globex")
	data, err := os.ReadFile(latest["globex"]["database"])
	require.NoError(t, err)
	foreign := filepath.Join(f.BackupDir("acme"), "db-"+now.UTC().Format("20060102T150405")+".dump")
	require.NoError(t, os.WriteFile(foreign, data, 0o644))
	rewrite(t, foreign, func(b []byte) []byte { return b }, true)
	rep := verify(t, f, backup.Options{RestoreTest: 1, Names: []string{"acme"}})
	mis, c := failedWith[*backup.DatabaseMismatchError](t, rep, "acme", "database", backup.CheckOwner)
	assert.Equal(t, f.Database("acme"), mis.Want)
	assert.Equal(t, f.Database("globex"), mis.Got)
	assert.Equal(t, foreign, mis.Path)
	assert.Contains(t, c.Detail, f.Database("globex"))
	assert.Contains(t, c.Detail, f.Database("acme"))
	assert.Contains(t, c.Detail, "line ")
	assert.Equal(t, backup.StatusFailed, status(t, rep, "acme"))
	for _, name := range []string{backup.CheckFresh, backup.CheckFormat, backup.CheckRestore} {
		got := check(t, rep, "acme", "database", name)
		assert.Equal(t, latest["acme"]["database"], got.File, "%s is measured on acme's own dump", name)
		assert.Equal(t, backup.StatusOK, got.Status, got.Detail)
	}

	// The only dump of acme is globex's: acme has no backup of its database.
	for _, p := range glob(t, f, "db-*.dump") {
		if p != foreign {
			require.NoError(t, os.Remove(p))
		}
	}
	rep = verify(t, f, backup.Options{Names: []string{"acme"}})
	failedWith[*backup.DatabaseMismatchError](t, rep, "acme", "database", backup.CheckOwner)
	failedWith[*backup.MissingError](t, rep, "acme", "database", backup.CheckPresent)
}

// TestVerify_FutureMTime: a backup dated in the future is a finding and
// never the newest nor fresh; within the clock-skew tolerance it is fine.
func TestVerify_FutureMTime(t *testing.T) {
	resetNow()
	f, latest := backedUp(t, "acme", "globex")
	future := now.Add(30 * 24 * time.Hour)
	require.NoError(t, os.Chtimes(latest["acme"]["data"], future, future))
	rep := verify(t, f, backup.Options{})
	fe, _ := failedWith[*backup.FutureError](t, rep, "acme", "data", backup.CheckFresh)
	assert.Equal(t, latest["acme"]["data"], fe.Path)
	for _, c := range checks(rep, "acme", "data", backup.CheckSize) {
		assert.NotEqual(t, latest["acme"]["data"], c.File, "the future file is not the newest")
	}
	// Only future files: none is present, none is fresh.
	for _, p := range glob(t, f, "data-*.tar.zst") {
		require.NoError(t, os.Chtimes(p, future, future))
	}
	rep = verify(t, f, backup.Options{})
	failedWith[*backup.MissingError](t, rep, "acme", "data", backup.CheckPresent)
	for _, c := range checks(rep, "acme", "data", backup.CheckFresh) {
		assert.NotEqual(t, backup.StatusOK, c.Status)
	}
	metrics := filepath.Join(t.TempDir(), "m.prom")
	require.NoError(t, rep.WriteMetrics(metrics))
	text, err := os.ReadFile(metrics)
	require.NoError(t, err)
	assert.NotContains(t, string(text), fmt.Sprint(future.Unix()), "a future date is never the newest timestamp")

	// Two minutes ahead (clocks drift): fine.
	near := now.Add(2 * time.Minute)
	for _, p := range glob(t, f, "data-*.tar.zst") {
		require.NoError(t, os.Chtimes(p, near, near))
	}
	rep = verify(t, f, backup.Options{})
	assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "data", backup.CheckFresh).Status)
}

// TestVerify_SchemaOnlyDump: a real pg_dump --schema-only of a database
// with rows; then of an emptied database whose previous dump had rows.
func TestVerify_SchemaOnlyDump(t *testing.T) {
	resetNow()
	f, latest := backedUp(t, "acme")
	rep := verify(t, f, backup.Options{})
	assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "database", backup.CheckData).Status)

	schemaOnly := filepath.Join(f.BackupDir("acme"), "db-"+now.UTC().Format("20060102T150405")+".dump")
	runTool(t, f.PG.Env(), "pg_dump", "--format=custom", "--schema-only", "--file="+schemaOnly, "--dbname="+f.Database("acme"))
	rewrite(t, schemaOnly, func(b []byte) []byte { return b }, true)
	rep = verify(t, f, backup.Options{})
	nd, c := failedWith[*backup.NoDataError](t, rep, "acme", "database", backup.CheckData)
	assert.Equal(t, schemaOnly, nd.Path)
	assert.Contains(t, c.Detail, "live database "+f.Database("acme")+" has rows")
	assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "database", backup.CheckFormat).Status, "structurally it is complete")

	// The live database is emptied: the previous dump still had rows.
	db, err := f.PG.Open(context.Background(), f.Database("acme"))
	require.NoError(t, err)
	var tables string
	require.NoError(t, db.QueryRow(`SELECT string_agg(quote_ident(schemaname) || '.' || quote_ident(tablename), ', ') FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables))
	_, err = db.Exec("TRUNCATE " + tables + " CASCADE")
	db.Close()
	require.NoError(t, err)
	rep = verify(t, f, backup.Options{})
	_, c = failedWith[*backup.NoDataError](t, rep, "acme", "database", backup.CheckData)
	assert.Contains(t, c.Detail, "previous dump "+latest["acme"]["database"]+" had table data")
}

// TestVerify_CompressedPlainDumps: real pg_dump plain output compressed
// with the real gzip and zstd, whole and truncated, under formats
// pg_plain and any; the whole .sql.gz restores.
func TestVerify_CompressedPlainDumps(t *testing.T) {
	resetNow()
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	dir := filepath.Join(f.Root, "plain", "acme")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	sql := filepath.Join(dir, "db-1.sql")
	runTool(t, f.PG.Env(), "pg_dump", "--format=plain", "--file="+sql, "--dbname="+f.Database("acme"))
	runTool(t, nil, "gzip", "-k", sql)
	runTool(t, nil, "zstd", "-q", sql, "-o", sql+".zst")
	for _, ext := range []string{"gz", "zst"} {
		for _, format := range []string{"pg_plain", "any"} {
			t.Run(ext+"/"+format, func(t *testing.T) {
				yaml := fleettest.LayoutYAML(f.Root, f.App, true) + "backups:\n  - component: database\n    path: " +
					f.Root + "/plain/{name}/db-*.sql." + ext + "\n    format: " + format + "\n"
				l, err := instance.ParseLayout([]byte(yaml), "plain.yml")
				require.NoError(t, err)
				restore := 0
				if format == "pg_plain" {
					restore = 1
				}
				run := func() *backup.Report {
					rep, err := backup.Verify(context.Background(), l, backup.Options{Now: now, Discovery: f.Options(), RestoreTest: restore})
					require.NoError(t, err)
					return rep
				}
				rep := run()
				got := check(t, rep, "acme", "database", backup.CheckFormat)
				assert.Equal(t, backup.StatusOK, got.Status, got.Detail)
				assert.Contains(t, got.Detail, map[string]string{"gz": "gzip", "zst": "zstd"}[ext]+" pg_plain")
				assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "database", backup.CheckData).Status)
				if restore > 0 {
					r := check(t, rep, "acme", "database", backup.CheckRestore)
					assert.Equal(t, backup.StatusOK, r.Status, r.Detail)
				}
				path := sql + "." + ext
				whole, err := os.ReadFile(path)
				require.NoError(t, err)
				defer os.WriteFile(path, whole, 0o644)
				for _, cut := range []int{len(whole) / 2, len(whole) - 8} {
					require.NoError(t, os.WriteFile(path, whole[:cut], 0o644))
					got = check(t, run(), "acme", "database", backup.CheckFormat)
					assert.Equal(t, backup.StatusFailed, got.Status, "cut at %d of %d: %s", cut, len(whole), got.Detail)
				}
			})
		}
	}
}

// dropDACCapabilities removes CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
// from the effective set of the calling thread, so that root meets file
// permissions like anyone. The caller must have locked its goroutine to
// the thread and must never unlock it: the thread dies with the goroutine.
func dropDACCapabilities(t *testing.T) {
	t.Helper()
	type header struct {
		version uint32
		pid     int32
	}
	type data struct{ effective, permitted, inheritable uint32 }
	h := header{version: 0x20080522} // _LINUX_CAPABILITY_VERSION_3
	var d [2]data
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&h)), uintptr(unsafe.Pointer(&d[0])), 0); e != 0 {
		t.Skipf("capget: %v", e)
	}
	d[0].effective &^= 1<<1 | 1<<2
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&h)), uintptr(unsafe.Pointer(&d[0])), 0); e != 0 {
		t.Skipf("capset: %v", e)
	}
}

// TestVerify_UnreadableBackupDirectory: the instance's backup directory
// cannot be read. That is said, with the OS error, never "no backup
// matches".
func TestVerify_UnreadableBackupDirectory(t *testing.T) {
	resetNow()
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop its capabilities")
	}
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "srv", "acme"), 0o755))
	dir := filepath.Join(root, "backups", "acme")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	tarGz(t, filepath.Join(root, "srv", "acme"), filepath.Join(dir, "data-1.tar.gz"), now.Add(-time.Hour))
	yaml := "app: unread\ncomponents:\n  - name: data\n    type: dir\n    path: " + root + "/srv/{name}\n" +
		"backups:\n  - component: data\n    path: " + root + "/backups/{name}/data-*.tar.gz\n    format: tar_gz\n    max_age: 26h\n"
	l, err := instance.ParseLayout([]byte(yaml), "unread.yml")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0))
	t.Cleanup(func() { os.Chmod(dir, 0o755) })

	var rep *backup.Report
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		dropDACCapabilities(t)
		_, err := os.ReadDir(dir)
		if !errors.Is(err, fs.ErrPermission) {
			err = fmt.Errorf("the directory is still readable: %v", err)
			return
		}
		rep, err = backup.Verify(context.Background(), l, backup.Options{Now: now, Workers: 1})
	}()
	<-done
	require.NoError(t, err)
	require.NotNil(t, rep)
	ue, c := failedWith[*backup.UnreadableError](t, rep, "acme", "data", backup.CheckPresent)
	assert.Equal(t, dir, ue.Dir)
	assert.ErrorIs(t, ue, fs.ErrPermission)
	assert.Contains(t, c.Detail, "cannot read "+dir)
	assert.Contains(t, c.Detail, "permission denied")
	for _, c := range checks(rep, "acme", "data", backup.CheckPresent) {
		assert.NotContains(t, c.Detail, "no backup matches")
	}
}

// TestVerify_SoftDeleteDuringRestoreTest: instance_soft_delete runs for
// real between the scratch restore and the comparison with the live
// database. The restore check says the instance is being deleted instead
// of calling a sound backup a failed restore.
func TestVerify_SoftDeleteDuringRestoreTest(t *testing.T) {
	resetNow()
	f, _ := backedUp(t, "acme", "globex")
	archives := filepath.Join(t.TempDir(), "archives")
	defer backup.SetAfterRestoreHook(func(name string) {
		_, err := softdelete.Delete(context.Background(), f.Layout, softdelete.Request{Name: name, ArchiveDir: archives,
			Reason: "test: deleted mid-run", Options: f.Options()})
		require.NoError(t, err)
	})()
	rep := verify(t, f, backup.Options{Names: []string{"acme"}, RestoreTest: 1, ArchiveDir: archives})
	c := check(t, rep, "acme", "database", backup.CheckRestore)
	assert.Equal(t, backup.StatusWarning, c.Status, c.Detail)
	assert.IsType(t, &backup.GoneError{}, c.Finding)
	assert.Contains(t, c.Detail, "instance acme is being soft-deleted: tombstone "+archives)
	assert.NotContains(t, c.Detail, "does not exist")
	assertNoScratch(t, f)
}

// TestVerify_DatabaseRenamedDuringRestoreTest: without archive_dir, a
// live database renamed mid-run is named as such.
func TestVerify_DatabaseRenamedDuringRestoreTest(t *testing.T) {
	resetNow()
	f, _ := backedUp(t, "acme")
	renamed := f.Database("acme") + "_moved"
	defer backup.SetAfterRestoreHook(func(name string) {
		admin, err := f.PG.Open(context.Background(), "postgres")
		require.NoError(t, err)
		defer admin.Close()
		_, err = admin.Exec("ALTER DATABASE " + pgdump.QuoteIdent(f.Database(name)) + " RENAME TO " + pgdump.QuoteIdent(renamed))
		require.NoError(t, err)
	})()
	t.Cleanup(func() {
		admin, err := f.PG.Open(context.Background(), "postgres")
		if err == nil {
			admin.Exec("DROP DATABASE IF EXISTS " + pgdump.QuoteIdent(renamed))
			admin.Close()
		}
	})
	rep := verify(t, f, backup.Options{RestoreTest: 1})
	c := check(t, rep, "acme", "database", backup.CheckRestore)
	assert.Equal(t, backup.StatusWarning, c.Status, c.Detail)
	assert.Contains(t, c.Detail, "live database "+f.Database("acme")+" was dropped or renamed during the run")
	assert.True(t, strings.HasPrefix(c.Detail, "test restore of "))
}

// TestVerify_LockHeldDuringRestoreTest: a fleetsafe run holds the
// instance's lock (as instance_soft_delete does from its first step) and
// the database is closed to connections (as its quarantine does). The
// restore check names the holder, and backup_verify never takes the lock.
func TestVerify_LockHeldDuringRestoreTest(t *testing.T) {
	resetNow()
	f, _ := backedUp(t, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	require.NoError(t, os.MkdirAll(filepath.Join(archives, "acme"), 0o700))
	lockf, err := os.OpenFile(filepath.Join(archives, "acme", ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	require.NoError(t, err)
	defer lockf.Close()
	require.NoError(t, syscall.Flock(int(lockf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
	defer backup.SetAfterRestoreHook(func(name string) {
		admin, err := f.PG.Open(context.Background(), "postgres")
		require.NoError(t, err)
		defer admin.Close()
		_, err = admin.Exec("ALTER DATABASE " + pgdump.QuoteIdent(f.Database(name)) + " WITH ALLOW_CONNECTIONS false")
		require.NoError(t, err)
	})()
	rep := verify(t, f, backup.Options{RestoreTest: 1, ArchiveDir: archives})
	c := check(t, rep, "acme", "database", backup.CheckRestore)
	assert.Equal(t, backup.StatusWarning, c.Status, c.Detail)
	assert.Contains(t, c.Detail, "was closed to connections during the run")
	assert.Contains(t, c.Detail, fmt.Sprintf("process %d holds the fleetsafe lock of instance acme", os.Getpid()))
	// The lock is still ours alone: a second exclusive flock from another
	// descriptor still fails.
	other, err := os.Open(filepath.Join(archives, "acme", ".lock"))
	require.NoError(t, err)
	defer other.Close()
	assert.Error(t, syscall.Flock(int(other.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
}
