package softdelete_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestRunbook_RestoresByHand is the day fleetsafe is not there: an
// instance is soft-deleted and purged until only its archive is left, then
// the shell blocks of the archive's RESTORE.md are run literally, with
// nothing but sha256sum, tar, zstd, a few coreutils and PostgreSQL's client
// tools on PATH. The instance must come back byte for byte (files,
// modes, owners, mtimes, symlinks, hard links; every table's rows). A
// second run over the restored instance must refuse loudly and change
// nothing, and a run with one component missing must put back that one
// only.
func TestRunbook_RestoresByHand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("restoring owners by hand needs root")
	}
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	envFile := addFileComponent(t, f, "acme")
	enrich(t, f.Path("data", "acme"))
	before := f.Snapshot(t, "acme")
	beforeEnv := fleettest.Tree(t, envFile)
	beforeDB := tableDigest(t, f.PG, f.Database("acme"))
	waitNoConnections(t, f.PG, f.Database("acme")) // deletion refuses a database in use

	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	// Staging databases are named after the archive ID; drop any a failed
	// run leaves.
	stagingTag := strings.ToLower(strings.ReplaceAll(res.Tombstone.ID, "-", "_"))
	t.Cleanup(func() { _ = fleettest.DropDatabasesLike(context.Background(), f.PG, stagingTag) })
	_, err = softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, ArchiveDir: archives, KeepLast: 1, PG: f.PG,
		Now: res.Tombstone.PurgeAfter.Add(time.Minute)})
	require.NoError(t, err)
	for _, c := range []string{"config", "data", "logs"} {
		assertAbsent(t, f.Path(c, "acme"))
	}
	assertAbsent(t, envFile)
	require.False(t, databaseExists(t, f.PG, f.Database("acme")), "purge dropped the database")

	runbook := string(archiveEntry(t, res.Archive.Path, "RESTORE.md"))
	assert.NotContains(t, runbook, "/path/to/")
	assert.Contains(t, runbook, filepath.Dir(res.Archive.Path), "the archive's real directory is named")
	blocks := shellBlocks(runbook)
	// check, config, data, logs, env, database, service
	require.Len(t, blocks, 7, runbook)

	sh := newRestoreShell(t)

	// A block that fails half-way (the data directory's filesystem runs
	// out of inodes) leaves the component absent, never partial: only the
	// staging directory it names.
	dataBlock := blocks[slices.IndexFunc(blocks, func(b string) bool { return strings.Contains(b, "'components/data'") })]
	data := f.Path("data", "acme")
	require.NoError(t, syscall.Mount("tmpfs", filepath.Dir(data), "tmpfs", 0, "size=1m,nr_inodes=6"))
	mounted := true
	unmount := func() {
		if mounted {
			require.NoError(t, syscall.Unmount(filepath.Dir(data), syscall.MNT_DETACH))
			mounted = false
		}
	}
	t.Cleanup(unmount)
	out, err := sh.run(dataBlock)
	require.Error(t, err, "a full filesystem fails the block:\n%s", out)
	assertAbsent(t, data)
	staged, _ := filepath.Glob(filepath.Join(filepath.Dir(data), ".fleetsafe-restore-*"))
	assert.Len(t, staged, 1, "the staging directory is all that is left")
	unmount()

	for i, b := range blocks {
		out, err := sh.run(b)
		require.NoError(t, err, "block %d failed:\n%s\n--- output:\n%s\n--- RESTORE.md:\n%s", i, b, out, runbook)
	}
	assert.Equal(t, before, f.Snapshot(t, "acme"), "files, modes, owners, mtimes, links and rows as they were")
	assert.Equal(t, beforeEnv, fleettest.Tree(t, envFile))
	assert.Equal(t, beforeDB, tableDigest(t, f.PG, f.Database("acme")), "every table as it was")
	assert.Equal(t, []string{"enable --now " + f.App + "@acme.service"}, sh.systemctlCalls(t))
	assertNoStaging(t, f, archives, stagingTag)

	// Run again over the restored instance: every component block refuses,
	// loudly, and nothing changes.
	for i, b := range blocks {
		out, err := sh.run(b)
		switch {
		case i == 0:
			require.NoError(t, err, "checking the archive again:\n%s", out)
		case strings.Contains(b, "systemctl "):
			require.NoError(t, err, out)
		default:
			require.Error(t, err, "block %d must refuse a present component:\n%s\n%s", i, b, out)
			assert.Contains(t, out, "REFUSED:", "block %d says why", i)
		}
	}
	assert.Equal(t, before, f.Snapshot(t, "acme"), "a refused run changes nothing")
	assert.Equal(t, beforeEnv, fleettest.Tree(t, envFile))
	assert.Equal(t, beforeDB, tableDigest(t, f.PG, f.Database("acme")))
	assertNoStaging(t, f, archives, stagingTag)

	// One component missing (and a dangling link where another was): only
	// the missing one is put back; the link is refused as present.
	require.NoError(t, os.RemoveAll(f.Path("data", "acme")))
	require.NoError(t, os.Remove(envFile))
	require.NoError(t, os.Symlink("/nonexistent", envFile))
	var refused []string
	for _, b := range blocks[1:] {
		if out, err := sh.run(b); err != nil {
			require.Contains(t, out, "REFUSED:")
			refused = append(refused, b)
		}
	}
	assert.Len(t, refused, 4, "config, logs, env (a dangling link is present) and database refused")
	assert.Equal(t, before, f.Snapshot(t, "acme"), "data came back alone")
	target, err := os.Readlink(envFile)
	require.NoError(t, err)
	assert.Equal(t, "/nonexistent", target, "the link in env's place was not touched")
	assertNoStaging(t, f, archives, stagingTag)
}

// restoreShell runs RESTORE.md blocks the way an operator would paste
// them, with PATH reduced to links to the tools RESTORE.md says it needs
// (and a systemctl that records its arguments: systemd does not run here).
type restoreShell struct {
	bin, scratch, calls string
}

func newRestoreShell(t *testing.T) *restoreShell {
	t.Helper()
	sh := &restoreShell{bin: t.TempDir(), scratch: t.TempDir()}
	sh.calls = filepath.Join(t.TempDir(), "systemctl.calls")
	for _, tool := range []string{"sha256sum", "zstd", "tar", "mkdir", "mv", "rmdir", "rm", "psql", "createdb", "pg_restore"} {
		p, err := exec.LookPath(tool)
		require.NoError(t, err, "RESTORE.md needs %s", tool)
		require.NoError(t, os.Symlink(p, filepath.Join(sh.bin, tool)))
	}
	stub := fmt.Sprintf("#!/bin/bash\nprintf '%%s\\n' \"$*\" >> %q\n", sh.calls)
	require.NoError(t, os.WriteFile(filepath.Join(sh.bin, "systemctl"), []byte(stub), 0o755))
	return sh
}

func (sh *restoreShell) run(block string) (string, error) {
	cmd := exec.Command("/bin/bash", "--noprofile", "--norc", "-c", block)
	cmd.Dir = sh.scratch
	cmd.Env = []string{"PATH=" + sh.bin}
	for _, kv := range os.Environ() { // a database connection, if the test has one: PG* only
		if strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (sh *restoreShell) systemctlCalls(t *testing.T) []string {
	data, err := os.ReadFile(sh.calls)
	require.NoError(t, err, "the unit step ran")
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// shellBlocks returns the body of every ```sh block of a Markdown text.
func shellBlocks(md string) []string {
	var blocks []string
	var cur *strings.Builder
	for _, line := range strings.SplitAfter(md, "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line)
		}
	}
	return blocks
}

// addFileComponent adds a file component (a secret, 0600, another owner)
// to the fleet's layout and creates it for name.
func addFileComponent(t *testing.T, f *fleettest.Fleet, name string) string {
	t.Helper()
	yml, err := os.ReadFile(f.LayoutFile)
	require.NoError(t, err)
	yml = append(yml, fmt.Sprintf("  - name: env\n    type: file\n    path: %s/env/%s/{name}.env\n", f.Root, f.App)...)
	require.NoError(t, os.WriteFile(f.LayoutFile, yml, 0o644))
	f.Layout, err = instance.LoadLayoutFile(f.LayoutFile)
	require.NoError(t, err)
	c, ok := f.Layout.Component("env")
	require.True(t, ok)
	_, _, p, err := instance.Locate(c, name)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte("SECRET_KEY=s3cr3t\n"), 0o600))
	require.NoError(t, os.Chown(p, 1000, 1000))
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 891011121, time.UTC)
	require.NoError(t, os.Chtimes(p, mtime, mtime))
	return p
}

// enrich adds what a by-hand restore gets wrong most easily: odd names,
// private and setgid directories, an empty directory, a hard link, a
// dangling link, and nanosecond mtimes on files, links and directories.
func enrich(t *testing.T, root string) {
	t.Helper()
	odd := filepath.Join(root, "odd name 'quoted' $HOME `x`.txt")
	require.NoError(t, os.WriteFile(odd, []byte("odd\n"), 0o604))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "private"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(root, "private", "key"), []byte("key\n"), 0o400))
	require.NoError(t, os.Mkdir(filepath.Join(root, "shared"), 0o775))
	require.NoError(t, os.Chmod(filepath.Join(root, "shared"), 0o2775|os.ModeSetgid))
	require.NoError(t, os.Mkdir(filepath.Join(root, "empty"), 0o755))
	require.NoError(t, os.Link(filepath.Join(root, "depot", "a1", "file-001.bin"), filepath.Join(root, "hardlink.bin")))
	require.NoError(t, os.Symlink("does/not/exist", filepath.Join(root, "dangling")))
	at := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.UTC)
	for _, p := range []string{odd, filepath.Join(root, "private", "key")} {
		require.NoError(t, os.Chtimes(p, at, at))
	}
	for _, l := range []string{"dangling", "latest"} {
		lchtimes(t, filepath.Join(root, l), at.Add(time.Hour))
	}
	for _, d := range []string{"private", "shared", "empty", "."} {
		require.NoError(t, os.Chtimes(filepath.Join(root, d), at.Add(2*time.Hour), at.Add(2*time.Hour)))
	}
}

// lchtimes sets the times of a symbolic link itself.
func lchtimes(t *testing.T, p string, at time.Time) {
	t.Helper()
	name, err := syscall.BytePtrFromString(p)
	require.NoError(t, err)
	ts := [2]syscall.Timespec{syscall.NsecToTimespec(at.UnixNano()), syscall.NsecToTimespec(at.UnixNano())}
	const atFDCWD, atSymlinkNofollow = -100, 0x100
	fd := atFDCWD
	_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(fd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(&ts[0])), atSymlinkNofollow, 0, 0)
	require.Zero(t, errno, "utimensat %s", p)
}

// tableDigest describes every table of a database: its columns and owner,
// its row count and a digest of its rows, and every sequence's position.
func tableDigest(t *testing.T, pg pgdump.Conn, database string) []string {
	t.Helper()
	ctx := context.Background()
	db, err := pg.Open(ctx, database)
	require.NoError(t, err)
	defer db.Close()
	var out, tables []string
	rows, err := db.QueryContext(ctx, `SELECT format('%I.%I', c.table_schema, c.table_name),
		string_agg(c.column_name || ' ' || c.data_type || ' ' || coalesce(c.column_default, ''), ', ' ORDER BY c.ordinal_position),
		(SELECT tableowner FROM pg_tables p WHERE p.schemaname = c.table_schema AND p.tablename = c.table_name)
		FROM information_schema.columns c
		WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema')
		GROUP BY c.table_schema, c.table_name ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var name, cols, owner string
		require.NoError(t, rows.Scan(&name, &cols, &owner))
		tables = append(tables, name)
		out = append(out, name+" ("+cols+") owner "+owner)
	}
	require.NoError(t, rows.Err())
	rows.Close()
	require.NotEmpty(t, tables)
	for _, tbl := range tables {
		var n int
		var sum string
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*), md5(coalesce(string_agg(t::text, E'\n' ORDER BY t::text), ''))
			FROM `+tbl+` t`).Scan(&n, &sum))
		out = append(out, fmt.Sprintf("%s: %d rows, md5 %s", tbl, n, sum))
	}
	seqs, err := db.QueryContext(ctx, `SELECT format('%I.%I', schemaname, sequencename), coalesce(last_value, 0) FROM pg_sequences ORDER BY 1`)
	require.NoError(t, err)
	defer seqs.Close()
	for seqs.Next() {
		var name string
		var last int64
		require.NoError(t, seqs.Scan(&name, &last))
		out = append(out, fmt.Sprintf("sequence %s at %d", name, last))
	}
	require.NoError(t, seqs.Err())
	return out
}

// waitNoConnections waits until the server has ended the sessions this
// test closed (a backend outlives its client's close by a moment).
func waitNoConnections(t *testing.T, pg pgdump.Conn, database string) {
	t.Helper()
	db, err := pg.Open(context.Background(), "postgres")
	require.NoError(t, err)
	defer db.Close()
	deadline := time.Now().Add(2 * time.Minute) // a loaded machine ends backends late
	for {
		var n int
		require.NoError(t, db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, database).Scan(&n))
		if n == 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "%d session(s) still open on %s", n, database)
		time.Sleep(20 * time.Millisecond)
	}
}

// assertNoStaging checks that no staging directory or database is left.
func assertNoStaging(t *testing.T, f *fleettest.Fleet, archives, tag string) {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(f.Root, "*", "*", ".fleetsafe-restore-*"))
	require.NoError(t, err)
	more, err := filepath.Glob(filepath.Join(f.Root, "*", "*", "*", ".fleetsafe-restore-*"))
	require.NoError(t, err)
	inArchives, err := filepath.Glob(filepath.Join(archives, "*", ".fleetsafe-restore-*"))
	require.NoError(t, err)
	assert.Empty(t, append(append(left, more...), inArchives...), "staging directories left")
	db, err := f.PG.Open(context.Background(), "postgres")
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM pg_database WHERE strpos(datname, $1) > 0`, tag).Scan(&n))
	assert.Zero(t, n, "staging databases left")
}

func assertAbsent(t *testing.T, p string) {
	t.Helper()
	_, err := os.Lstat(p)
	assert.True(t, errors.Is(err, os.ErrNotExist), "%s is gone: %v", p, err)
}

// archiveEntry reads one entry of a .tar.zst archive.
func archiveEntry(t *testing.T, archive, name string) []byte {
	t.Helper()
	f, err := os.Open(archive)
	require.NoError(t, err)
	defer f.Close()
	zr, err := zstd.NewReader(f)
	require.NoError(t, err)
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		require.NoError(t, err, "%s has no %s", archive, name)
		if hdr.Name == name {
			var b bytes.Buffer
			_, err := io.Copy(&b, tr)
			require.NoError(t, err)
			return b.Bytes()
		}
	}
}

func runbookManifest(comps ...archive.ManifestComponent) *archive.Manifest {
	return &archive.Manifest{ID: "20260101T000000Z-0a1b2c3d", Instance: "acme", App: "tracim", Host: "web-a",
		ToolVersion: "test", Reason: "customer left", CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Components: comps}
}

// No command is ever printed with an empty argument: without a unit (none
// in the layout, or absent at deletion) there is no unit step, and a
// sentence says so.
func TestRunbook_NoUnitNoEmptyCommand(t *testing.T) {
	dir := archive.ManifestComponent{Name: "data", Type: "dir", Locator: "/srv/tracim/acme", Present: true, ArchivePath: "components/data"}
	cases := map[string]struct {
		m    *archive.Manifest
		want string
	}{
		"no unit in the layout": {runbookManifest(dir), "names no systemd unit"},
		"unit absent":           {runbookManifest(dir, archive.ManifestComponent{Name: "service", Type: "systemd_unit", Locator: "tracim@acme.service"}), "there is no unit to start"},
		"unit without a name":   {runbookManifest(dir, archive.ManifestComponent{Name: "service", Type: "systemd_unit", Present: true}), "there is no unit to start"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			md := string(archive.Runbook(c.m, "/var/archives/acme/x.tar.zst"))
			assert.Contains(t, md, c.want)
			assert.NotContains(t, md, "systemctl enable")
			blocks := shellBlocks(md)
			require.Len(t, blocks, 2, md) // check, data
			for _, b := range blocks {
				assert.NotContains(t, b, "''", "an empty argument")
				for _, line := range strings.Split(b, "\n") {
					assert.Equal(t, strings.TrimRight(line, " "), line, "a command ending in an empty argument")
				}
			}
		})
	}
}

// A bare archive name (directory unknown) gives a placeholder that stands
// out and is explained, never a made-up path.
func TestRunbook_UnknownDirectoryIsAnExplainedPlaceholder(t *testing.T) {
	md := string(archive.Runbook(runbookManifest(archive.ManifestComponent{Name: "data", Type: "dir",
		Locator: "/srv/tracim/acme", Present: true, ArchivePath: "components/data"}), "x.tar.zst"))
	assert.NotContains(t, md, "/path/to/")
	assert.Contains(t, md, "`<ARCHIVE_DIR>` below stands for the directory that holds `x.tar.zst`")
	for _, b := range shellBlocks(md) {
		assert.Contains(t, b, "'<ARCHIVE_DIR>") // inside quotes: inert if left unreplaced
	}
}

// Free text and odd paths cannot add commands: a reason holding a code
// block stays prose, and a path with a newline, backticks, quotes and $(…)
// is one shell word, refused as present with its exact name and never run.
func TestRunbook_HostileTextCannotAddCommands(t *testing.T) {
	root := t.TempDir()
	weird := filepath.Join(root, "we\n```\nird `touch pwned1` $(touch pwned2) 'q' \\", "acme")
	require.NoError(t, os.MkdirAll(weird, 0o755))
	m := runbookManifest(archive.ManifestComponent{Name: "data", Type: "dir", Locator: weird, Present: true, ArchivePath: "components/data"})
	m.Reason = "gone\n```sh\ntouch pwned3\n```\n"
	m.RequestedBy = "`touch pwned4`"
	md := string(archive.Runbook(m, filepath.Join(root, "x\n```\n.tar.zst")))
	blocks := shellBlocks(md)
	require.Len(t, blocks, 2, md)
	sh := newRestoreShell(t)
	sh.scratch = root
	for _, b := range blocks {
		out, err := sh.run(b)
		require.Error(t, err, out) // the archive does not exist; the component is present
	}
	out, _ := sh.run(blocks[1])
	assert.Equal(t, "REFUSED: "+weird+" exists; move it aside first, then run this block again\n", out)
	left, err := filepath.Glob(filepath.Join(root, "pwned*"))
	require.NoError(t, err)
	assert.Empty(t, left)
	entries, err := os.ReadDir(filepath.Dir(weird))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing staged beside the refused component")
}

// TestRunbook_RestoresByHand_DatabaseNameWithConninfoCharacters runs the
// database block of RESTORE.md literally, as TestRunbook_RestoresByHand
// does, for a database whose name holds '=', spaces and a quote. A layout
// never resolves such a name, but a manifest carries whatever name the
// database had, and libpq reads a --dbname or -d value holding '=' as a
// connection string: every name that reaches a client tool must be a
// quoted connection string, every name in SQL a quoted identifier or
// literal. The block must bring the rows back under that exact name, and
// refuse, changing nothing, when it runs again.
func TestRunbook_RestoresByHand_DatabaseNameWithConninfoCharacters(t *testing.T) {
	pg := fleettest.RequirePG(t)
	ctx := context.Background()
	odd := fmt.Sprintf("fsrb %s host=/nonexistent dbname=postgres it's", strings.ToLower(fleettest.RandomApp()))
	admin, err := pg.Open(ctx, "postgres")
	require.NoError(t, err)
	defer admin.Close()
	drop := func() {
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgdump.QuoteIdent(odd)+" WITH (FORCE)")
	}
	drop()
	t.Cleanup(drop)
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(odd))
	require.NoError(t, err)
	db, err := pg.Tenant().Open(ctx, odd) // the application's session
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50) g")
	require.NoError(t, err)
	db.Close()
	before := tableDigest(t, pg, odd)
	waitNoConnections(t, pg, odd)

	dir := t.TempDir()
	dump := filepath.Join(dir, "db.pgdump")
	require.NoError(t, pgdump.Dump(ctx, pg, odd, dump))
	arch := filepath.Join(dir, "20260101T000000.000000Z-0a1b2c3d.tar.zst")
	data, err := os.ReadFile(dump)
	require.NoError(t, err)
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	require.NoError(t, err)
	tw := tar.NewWriter(zw)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "components/database.pgdump", Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(data))}))
	_, err = tw.Write(data)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(arch, buf.Bytes(), 0o600))

	m := runbookManifest(archive.ManifestComponent{Name: "database", Type: "postgresql", Locator: odd, Present: true, ArchivePath: "components/database.pgdump"})
	m.ID = "20260101T000000.000000Z-0a1b2c3d"
	runbook := string(archive.Runbook(m, arch))
	var block string
	for _, b := range shellBlocks(runbook) {
		if strings.Contains(b, "pg_restore") {
			block = b
		}
	}
	require.NotEmpty(t, block, runbook)
	t.Cleanup(func() { _ = fleettest.DropDatabasesLike(context.Background(), pg, "20260101t000000_000000z_0a1b2c3d") })

	sh := newRestoreShell(t)
	out, err := sh.run(block)
	require.Error(t, err, "the database exists: the block refuses\n%s", out)
	assert.Contains(t, out, "REFUSED:")
	assert.Equal(t, before, tableDigest(t, pg, odd), "a refused block changes nothing")

	waitNoConnections(t, pg, odd)
	drop()
	out, err = sh.run(block)
	require.NoError(t, err, "block failed:\n%s\n--- output:\n%s", block, out)
	assert.Equal(t, before, tableDigest(t, pg, odd), "every row back under the exact name")
	for _, line := range strings.Split(block, "\n") {
		for _, opt := range []string{"-d ", "--dbname="} {
			if i := strings.Index(line, opt); i >= 0 {
				assert.True(t, strings.HasPrefix(line[i+len(opt):], "'dbname="), "a database given to a client tool is a quoted connection string: %s", line)
			}
		}
	}
}
