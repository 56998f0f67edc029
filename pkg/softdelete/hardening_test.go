package softdelete_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// purgeQuarantine removes what a deletion quarantined, as purge would, so
// that a restore must come from the archive.
func purgeQuarantine(t *testing.T, f *fleettest.Fleet, res *softdelete.Result) {
	t.Helper()
	for _, m := range res.Quarantined {
		if m.Type == "postgresql" {
			require.NoError(t, fleettest.DropDatabasesLike(context.Background(), f.PG, m.To))
		} else {
			require.NoError(t, os.RemoveAll(m.To))
		}
	}
}

func archivesOf(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "acme", "*.tar.zst*"))
	require.NoError(t, err)
	tmp, err := filepath.Glob(filepath.Join(dir, "acme", ".*.tmp*"))
	require.NoError(t, err)
	return append(m, tmp...)
}

func TestHostile_ComponentSwappedForALinkBeforeQuarantine(t *testing.T) {
	for _, target := range []string{"/", "globex"} {
		t.Run(target, func(t *testing.T) {
			f := fleettest.New(t, false, "acme", "globex")
			ctx := context.Background()
			archives := filepath.Join(t.TempDir(), "archives")
			globex := f.Snapshot(t, "globex")
			data := f.Path("data", "acme")
			aside := filepath.Join(t.TempDir(), "aside")
			link := target
			if target == "globex" {
				link = f.Path("data", "globex")
			}
			req := request(f, archives, "acme")
			req.AfterStep = func(step string) {
				if step == "verify" {
					// Between the verified archive and the quarantine,
					// the data directory becomes a link.
					require.NoError(t, os.Rename(data, aside))
					require.NoError(t, os.Symlink(link, data))
				}
			}
			_, err := softdelete.Delete(ctx, f.Layout, req)
			var re *softdelete.RefusedError
			require.True(t, errors.As(err, &re), "%v", err)
			assert.Contains(t, err.Error(), "changed between archiving and quarantine")
			assert.Contains(t, err.Error(), "is now a different symbolic link")
			_, err = os.Stat(f.Path("config", "acme"))
			assert.NoError(t, err, "nothing was moved")
			got, err := os.Readlink(data)
			require.NoError(t, err)
			assert.Equal(t, link, got, "the link itself is left where it is")
			assert.Equal(t, globex, f.Snapshot(t, "globex"), "the other instance is untouched")
		})
	}
}

func TestHostile_ComponentALinkAtPlanningIsRefused(t *testing.T) {
	f := fleettest.New(t, false, "acme", "globex")
	archives := filepath.Join(t.TempDir(), "archives")
	data := f.Path("data", "acme")
	require.NoError(t, os.RemoveAll(data))
	require.NoError(t, os.Symlink("/", data))
	_, err := softdelete.Delete(context.Background(), f.Layout, request(f, archives, "acme"))
	var re *softdelete.RefusedError
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Empty(t, archivesOf(t, archives))
}

func TestHostile_FileChangesWhileArchived(t *testing.T) {
	t.Run("rewritten: refused, naming the file", func(t *testing.T) {
		f := fleettest.New(t, false, "acme")
		archives := filepath.Join(t.TempDir(), "archives")
		changing := filepath.Join(f.Path("data", "acme"), "depot", "a1", "file-002.bin")
		req := request(f, archives, "acme")
		req.AfterStep = func(step string) {
			if step == "hash" {
				// The application rewrites a file after the manifest hashed it.
				fh, err := os.OpenFile(changing, os.O_WRONLY, 0)
				require.NoError(t, err)
				_, err = fh.WriteAt([]byte("REWRITTEN"), 0)
				require.NoError(t, err)
				require.NoError(t, fh.Close())
			}
		}
		_, err := softdelete.Delete(context.Background(), f.Layout, req)
		var ce *archive.ChangedFileError
		require.True(t, errors.As(err, &ce), "%v", err)
		assert.Equal(t, changing, ce.Path, "says which file moved")
		assert.Empty(t, archivesOf(t, archives), "the inconsistent archive is removed")
		for _, c := range []string{"config", "data", "logs"} {
			_, err := os.Stat(f.Path(c, "acme"))
			assert.NoError(t, err, "%s not removed", c)
		}
	})
	t.Run("appended: refused, the lines would exist only in quarantine", func(t *testing.T) {
		f := fleettest.New(t, false, "acme")
		archives := filepath.Join(t.TempDir(), "archives")
		log := filepath.Join(f.Path("logs", "acme"), "tracim.log")
		req := request(f, archives, "acme")
		req.AfterStep = func(step string) {
			if step == "hash" {
				fh, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
				require.NoError(t, err)
				_, err = fh.WriteString("a request came in\n")
				require.NoError(t, err)
				require.NoError(t, fh.Close())
			}
		}
		res, err := softdelete.Delete(context.Background(), f.Layout, req)
		var le *softdelete.LateChangeError
		require.ErrorAs(t, err, &le)
		assert.Nil(t, res, "nothing moved")
		assert.Contains(t, err.Error(), log)
		assert.Empty(t, archivesOf(t, archives), "no archive that misses the lines is kept")
		for _, c := range []string{"config", "data", "logs"} {
			_, err := os.Stat(f.Path(c, "acme"))
			assert.NoError(t, err, "%s not removed", c)
		}
	})
}

func TestHostile_SpecialFiles(t *testing.T) {
	kinds := map[string]func(t *testing.T, path string){
		"fifo": func(t *testing.T, path string) { require.NoError(t, syscall.Mkfifo(path, 0o600)) },
		"socket": func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			require.NoError(t, err)
			t.Cleanup(func() { l.Close() })
		},
		"device": func(t *testing.T, path string) {
			if err := syscall.Mknod(path, syscall.S_IFCHR|0o600, 1<<8|3); err != nil {
				t.Skipf("mknod needs root: %v", err)
			}
		},
	}
	for kind, make := range kinds {
		t.Run(kind, func(t *testing.T) {
			f := fleettest.New(t, false, "acme")
			archives := filepath.Join(t.TempDir(), "archives")
			special := filepath.Join(f.Path("data", "acme"), "special")
			make(t, special)
			before := f.Snapshot(t, "acme")
			_, err := softdelete.Delete(context.Background(), f.Layout, request(f, archives, "acme"))
			var se *archive.FindingsError
			require.True(t, errors.As(err, &se), "%v", err)
			require.Len(t, se.Findings, 1)
			assert.Equal(t, special, se.Findings[0].Path)
			assert.Equal(t, archive.LossSpecialFiles, se.Findings[0].Kind)
			assert.Equal(t, before, f.Snapshot(t, "acme"))
			assert.Empty(t, archivesOf(t, archives))
		})
	}
}

// roundTrip deletes acme, removes the quarantine and restores from the
// archive alone.
func roundTrip(t *testing.T, f *fleettest.Fleet) {
	t.Helper()
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	purgeQuarantine(t, f, res)
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	require.Equal(t, softdelete.SourceArchive, rr.Source)
}

func TestHostile_HardLinksComeBackLinked(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	data := f.Path("data", "acme")
	first := filepath.Join(data, "depot", "a1", "file-001.bin")
	second := filepath.Join(data, "preview", "same-as-001.bin")
	require.NoError(t, os.Link(first, second))
	before := f.Snapshot(t, "acme")
	roundTrip(t, f)
	assert.Equal(t, before, f.Snapshot(t, "acme"))
	a, err := os.Stat(first)
	require.NoError(t, err)
	b, err := os.Stat(second)
	require.NoError(t, err)
	assert.True(t, os.SameFile(a, b), "the two names are one file again")
}

func TestHostile_SparseFile(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	sparse := filepath.Join(f.Path("data", "acme"), "disk.img")
	fh, err := os.Create(sparse)
	require.NoError(t, err)
	_, err = fh.WriteAt([]byte("end"), 256<<20)
	require.NoError(t, err)
	require.NoError(t, fh.Close())
	before := f.Snapshot(t, "acme")

	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	assert.Less(t, res.Archive.SizeBytes, int64(1<<20), "256 MiB of holes compress to almost nothing")
	purgeQuarantine(t, f, res)
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, before, f.Snapshot(t, "acme"), "same content; the holes come back as written zeros")
}

func TestHostile_NamesThatAreNotUTF8(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	data := f.Path("data", "acme")
	require.NoError(t, os.WriteFile(filepath.Join(data, "caf\xe9-\xff.txt"), []byte("latin-1 name"), 0o644))
	require.NoError(t, os.Symlink("target-\xfe", filepath.Join(data, "link-\xfd")))
	before := f.Snapshot(t, "acme")
	roundTrip(t, f)
	assert.Equal(t, before, f.Snapshot(t, "acme"))
}

// treeDigest hashes a tree through os.Root, which reaches paths longer
// than PATH_MAX one component at a time.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	root, err := os.OpenRoot(dir)
	require.NoError(t, err)
	defer root.Close()
	h := sha256.New()
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		info, err := d.Info()
		require.NoError(t, err)
		io.WriteString(h, p+" "+info.Mode().String()+" "+info.ModTime().UTC().String()+"\n")
		if info.Mode().IsRegular() {
			fh, err := root.Open(p)
			require.NoError(t, err)
			_, err = io.Copy(h, fh)
			fh.Close()
			require.NoError(t, err)
		}
		return nil
	})
	require.NoError(t, err)
	return string(h.Sum(nil))
}

func TestHostile_PathOf4096Bytes(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	data := f.Path("data", "acme")
	root, err := os.OpenRoot(data)
	require.NoError(t, err)
	elem := strings.Repeat("d", 200)
	var rel string
	for len(data)+1+len(rel) < 4096-210 {
		rel = filepath.Join(rel, elem)
	}
	require.NoError(t, root.MkdirAll(rel, 0o755))
	name := filepath.Join(rel, strings.Repeat("f", 4096-len(data)-2-len(rel)))
	require.Equal(t, 4096, len(data)+1+len(name), "a path of exactly 4,096 bytes")
	require.NoError(t, root.WriteFile(name, []byte("deep"), 0o644))
	root.Close()
	before := treeDigest(t, data)
	roundTrip(t, f)
	assert.Equal(t, before, treeDigest(t, data))
}

func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

func TestHostile_AnotherFilesystem(t *testing.T) {
	t.Run("component is a mount point", func(t *testing.T) {
		f := fleettest.New(t, false, "acme")
		cfg := f.Path("config", "acme")
		keep := filepath.Join(t.TempDir(), "cfg")
		require.NoError(t, os.Rename(cfg, keep))
		mountTmpfs(t, cfg)
		require.NoError(t, os.WriteFile(filepath.Join(cfg, "development.ini"), []byte("on tmpfs"), 0o644))
		archives := filepath.Join(t.TempDir(), "archives")
		before := f.Snapshot(t, "acme")
		_, err := softdelete.Delete(context.Background(), f.Layout, request(f, archives, "acme"))
		var re *softdelete.RefusedError
		require.True(t, errors.As(err, &re), "%v", err)
		assert.Contains(t, err.Error(), "another filesystem")
		assert.Equal(t, before, f.Snapshot(t, "acme"), "never a half move")
		assert.Empty(t, archivesOf(t, archives))
	})
	t.Run("trash is a mount point", func(t *testing.T) {
		f := fleettest.New(t, false, "acme")
		mountTmpfs(t, filepath.Join(filepath.Dir(f.Path("logs", "acme")), softdelete.TrashDir))
		archives := filepath.Join(t.TempDir(), "archives")
		before := f.Snapshot(t, "acme")
		_, err := softdelete.Delete(context.Background(), f.Layout, request(f, archives, "acme"))
		assert.ErrorContains(t, err, "another filesystem")
		assert.Equal(t, before, f.Snapshot(t, "acme"))
	})
}

func TestFailingDisk_TombstoneCannotBeWritten(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	before := f.Snapshot(t, "acme")
	req := request(f, archives, "acme")
	req.AfterStep = func(step string) {
		if step != "verify" {
			return
		}
		// Make the instance's archive directory immutable so that
		// writing the tombstone (a new temporary file, renamed) fails.
		m, _ := filepath.Glob(filepath.Join(archives, "acme", "*.tar.zst"))
		require.Len(t, m, 1)
		chattr(t, "+i", filepath.Join(archives, "acme"))
	}
	_, err := softdelete.Delete(context.Background(), f.Layout, req)
	out, cerr := exec.Command("chattr", "-i", filepath.Join(archives, "acme")).CombinedOutput()
	require.NoError(t, cerr, "chattr -i: %s", out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tombstone.json")
	assert.Contains(t, err.Error(), "nothing was moved")
	assert.Equal(t, before, f.Snapshot(t, "acme"), "no removal without a tombstone")
	ts, _ := filepath.Glob(filepath.Join(archives, "acme", "*.tombstone.json"))
	require.Len(t, ts, 1, "the journal entry written before archiving")
	journal, err := softdelete.ReadTombstone(ts[0])
	require.NoError(t, err)
	assert.Equal(t, softdelete.StateArchiving, journal.State, "the tombstone never says more than what happened")

	// The next run names the interrupted deletion and completes its own.
	req.AfterStep = nil
	require.NoError(t, exec.Command("chattr", "-i", filepath.Join(archives, "acme")).Run())
	res, err := softdelete.Delete(context.Background(), f.Layout, req)
	require.NoError(t, err)
	require.Len(t, res.Warnings, 1)
	assert.Contains(t, res.Warnings[0], journal.ID)
	journal, err = softdelete.ReadTombstone(ts[0])
	require.NoError(t, err)
	assert.Equal(t, softdelete.StateAbandoned, journal.State)
	assert.Equal(t, softdelete.StateQuarantined, res.Tombstone.State)
}

func TestFailingDisk_DatabaseDisappearsMidDump(t *testing.T) {
	f := fleettest.NewSpec(t, fleettest.Spec{Names: nil, DB: true})
	f.Rows = 1000000 // a dump of about a second, long enough to be caught mid-way
	ctx := context.Background()
	require.NoError(t, f.AddInstance(ctx, "acme"))
	files := map[string]map[string]string{}
	for _, c := range []string{"config", "data", "logs"} {
		files[c] = fleettest.Tree(t, f.Path(c, "acme"))
	}
	archives := filepath.Join(t.TempDir(), "archives")
	// The watcher drops the database once it sees the dump's COPY, for as
	// long as the deletion runs (not for a fixed number of polls: on a
	// loaded machine the dump may start seconds later).
	done, finished := make(chan struct{}), make(chan struct{})
	var dropped atomic.Bool
	go func() {
		defer close(done)
		admin, err := f.PG.Open(ctx, "postgres")
		if err != nil {
			t.Errorf("watcher: %v", err)
			return
		}
		defer admin.Close()
		for {
			select {
			case <-finished:
				return
			default:
			}
			var n int
			_ = admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'COPY%'`, f.Database("acme")).Scan(&n)
			if n > 0 {
				_, err := admin.Exec("DROP DATABASE " + f.Database("acme") + " WITH (FORCE)")
				dropped.Store(err == nil)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	close(finished)
	<-done
	require.True(t, dropped.Load(), "the watcher never saw the dump running (delete: %v)", err)
	require.Error(t, err, "the dump cannot succeed once its database is gone")
	assert.Contains(t, err.Error(), "dump component database")
	for _, c := range []string{"config", "data", "logs"} {
		assert.Equal(t, files[c], fleettest.Tree(t, f.Path(c, "acme")), "%s untouched", c)
	}
	assert.Empty(t, archivesOf(t, archives))
}

func TestModes_WhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	f := fleettest.New(t, false, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(context.Background(), f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	for path, want := range map[string]fs.FileMode{
		res.Archive.Path:                    0o600,
		res.Archive.Path + ".sha256":        0o600,
		res.Tombstone.Path:                  0o600,
		filepath.Dir(res.Archive.Path):      0o700,
		filepath.Dir(res.Quarantined[0].To): 0o700,
	} {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, want, fi.Mode().Perm(), path)
	}
}

// A hard link in an archive may only name an entry of its own component.
func TestRestore_HardLinkAcrossComponentsRefused(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	require.NoError(t, os.RemoveAll(f.Path("data", "acme")))
	comps := []archive.ManifestComponent{{Name: "data", Type: "dir", Locator: f.Path("data", "acme"), Present: true, ArchivePath: "components/data"}}
	archives := filepath.Join(t.TempDir(), "archives")
	path := writeHostileArchive(t, f.App, filepath.Join(archives, "acme"), "acme", comps, []entry{
		{hdr: tarDir("components/data")},
		{hdr: tarLink("components/data/x", "components/config/development.ini")},
	})
	_, err := softdelete.Restore(context.Background(), f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Archive: path, Source: softdelete.SourceArchive, Options: f.Options()})
	assert.ErrorContains(t, err, "which is not an earlier regular file of component data")
}

func tarDir(name string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}
}

func tarLink(name, target string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}
}

// Two runs of the same deletion at once: one archives and quarantines, the
// other waits its turn and finds the instance gone, or is refused by the
// lock; never two archives, never a half-moved instance.
func TestDelete_TwoConcurrentRuns(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	type outcome struct {
		res *softdelete.Result
		err error
	}
	results := make(chan outcome, 2)
	start := make(chan struct{})
	for range 2 {
		go func() {
			<-start
			res, err := softdelete.Delete(context.Background(), f.Layout, request(f, archives, "acme"))
			results <- outcome{res, err}
		}()
	}
	close(start)
	changed := 0
	for range 2 {
		o := <-results
		if o.err != nil {
			assert.ErrorContains(t, o.err, "another fleetsafe run holds the lock")
			continue
		}
		if o.res.Changed {
			changed++
		}
	}
	assert.Equal(t, 1, changed, "exactly one run deleted")
	m, _ := filepath.Glob(filepath.Join(archives, "acme", "*.tar.zst"))
	assert.Len(t, m, 1, "one archive")
	ts, _ := filepath.Glob(filepath.Join(archives, "acme", "*.tombstone.json"))
	assert.Len(t, ts, 1, "one tombstone")
	for _, c := range []string{"config", "data", "logs"} {
		_, err := os.Stat(f.Path(c, "acme"))
		assert.True(t, os.IsNotExist(err), "%s quarantined", c)
	}
}
