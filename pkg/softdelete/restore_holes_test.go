package softdelete_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// dropQuarantine removes what a deletion quarantined, as purge would, so
// that a restore must come from the archive.
func dropQuarantine(t *testing.T, f *fleettest.Fleet, res *softdelete.Result) {
	t.Helper()
	for _, m := range res.Quarantined {
		if m.Type == instance.TypePostgreSQL {
			require.NoError(t, fleettest.DropDatabasesLike(context.Background(), f.PG, m.To))
		} else {
			require.NoError(t, os.RemoveAll(m.To))
		}
	}
}

// forgeArchive rewrites an archive as an attacker with write access to the
// archive directory could: the manifest through edit, entry bodies through
// body (the manifest entry's sha256 and size follow), and a sidecar that
// matches. Everything stays internally consistent.
func forgeArchive(t *testing.T, path string, edit func(m *archive.Manifest), body func(name string, b []byte) []byte) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	zr, err := zstd.NewReader(bytes.NewReader(raw))
	require.NoError(t, err)
	defer zr.Close()
	tr := tar.NewReader(zr)
	type ent struct {
		hdr  *tar.Header
		data []byte
	}
	var ents []ent
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		ents = append(ents, ent{h, data})
	}
	var m archive.Manifest
	require.NoError(t, json.Unmarshal(ents[0].data, &m))
	for i := range ents[1:] {
		e := &ents[i+1]
		if body == nil || e.hdr.Typeflag != tar.TypeReg {
			continue
		}
		nb := body(e.hdr.Name, e.data)
		if bytes.Equal(nb, e.data) {
			continue
		}
		e.data = nb
		e.hdr.Size = int64(len(nb))
		sum := sha256.Sum256(nb)
		for j := range m.Files {
			if m.Files[j].Path == e.hdr.Name {
				m.Files[j].SHA256, m.Files[j].Size = hex.EncodeToString(sum[:]), int64(len(nb))
			}
		}
	}
	if edit != nil {
		edit(&m)
	}
	mj, err := json.Marshal(m)
	require.NoError(t, err)
	ents[0].data = mj
	ents[0].hdr.Size = int64(len(mj))
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	require.NoError(t, err)
	tw := tar.NewWriter(zw)
	for _, e := range ents {
		e.hdr.Format = tar.FormatPAX
		require.NoError(t, tw.WriteHeader(e.hdr))
		_, err := tw.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	sum := sha256.Sum256(buf.Bytes())
	require.NoError(t, os.WriteFile(path+".sha256", []byte(hex.EncodeToString(sum[:])+"  "+filepath.Base(path)+"\n"), 0o600))
}

func component(m *archive.Manifest, name string) *archive.ManifestComponent {
	for i := range m.Components {
		if m.Components[i].Name == name {
			return &m.Components[i]
		}
	}
	return nil
}

// stagingLeftovers lists staging directories left beside the instance's
// components.
func stagingLeftovers(t *testing.T, f *fleettest.Fleet, name string) []string {
	t.Helper()
	var out []string
	for _, c := range f.Layout.Components {
		if c.Type != instance.TypeDir {
			continue
		}
		m, _ := filepath.Glob(filepath.Join(filepath.Dir(f.Path(c.Name, name)), softdelete.StagingPrefix+"*"))
		out = append(out, m...)
	}
	return out
}

// Case 3: a manifest that sends a component elsewhere than this host's
// layout (or names another database) is refused, naming both values, and
// nothing is written at either place.
func TestRestore_ForgedManifestLocatorRefused(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	dropQuarantine(t, f, res)
	elsewhere := filepath.Join(t.TempDir(), "elsewhere", "data")
	forgeArchive(t, res.Archive.Path, func(m *archive.Manifest) {
		component(m, "data").Locator = elsewhere
	}, nil)
	// Without the tombstone's digest to catch it, the layout check must.
	require.NoError(t, os.Remove(res.Tombstone.Path))
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Archive: res.Archive.Path, Options: f.Options()})
	var mm *softdelete.ManifestMismatchError
	require.ErrorAs(t, err, &mm)
	assert.Contains(t, err.Error(), elsewhere)
	assert.Contains(t, err.Error(), f.Path("data", "acme"))
	assert.False(t, rr.Changed)
	assert.NoDirExists(t, elsewhere)
	assert.NoDirExists(t, f.Path("data", "acme"))
	assert.NoDirExists(t, f.Path("config", "acme"))

	// A database name from the manifest is never used either.
	other := f.Database("acme") + "_forged"
	forgeArchive(t, res.Archive.Path, func(m *archive.Manifest) {
		component(m, "data").Locator = f.Path("data", "acme")
		component(m, "database").Locator = other
		m.Databases[0].Database = other
	}, nil)
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Archive: res.Archive.Path, Options: f.Options()})
	require.ErrorAs(t, err, &mm)
	assert.Contains(t, err.Error(), other)
	db, err := f.PG.Open(ctx, "postgres")
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM pg_database WHERE datname IN ($1, $2)", other, f.Database("acme")).Scan(&n))
	assert.Zero(t, n, "no database created")

	// Another app or instance in the manifest: refused.
	forgeArchive(t, res.Archive.Path, func(m *archive.Manifest) {
		component(m, "database").Locator = f.Database("acme")
		m.Databases[0].Database = f.Database("acme")
		m.Instance = "globex"
	}, nil)
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Archive: res.Archive.Path, Options: f.Options()})
	require.ErrorAs(t, err, &mm)
	assert.Equal(t, "instance", mm.Field)
}

// Case 3: changed content with a matching manifest entry and sidecar is
// caught by the sha256 the tombstone recorded when the archive was written.
func TestRestore_ArchiveMustMatchItsTombstone(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	dropQuarantine(t, f, res)
	forgeArchive(t, res.Archive.Path, nil, func(name string, b []byte) []byte {
		if strings.HasSuffix(name, "development.ini") {
			return []byte("[app:main]\nsqlalchemy.url = postgresql://attacker/\n")
		}
		return b
	})
	_, err = archive.VerifyArchive(ctx, res.Archive.Path)
	require.NoError(t, err, "the forgery is internally consistent")
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tombstone")
	assert.Contains(t, err.Error(), res.Archive.SHA256)
	assert.False(t, rr.Changed)
	assert.NoDirExists(t, f.Path("config", "acme"))
	assert.Empty(t, stagingLeftovers(t, f, "acme"))
}

// Case 6: force with an archive that fails verification leaves the live
// instance exactly as it was: nothing is moved aside before the archive
// is verified and the replacement staged.
func TestRestore_ForceWithCorruptArchiveLeavesLiveInstance(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	live := f.Snapshot(t, "acme")
	tombs, err := softdelete.Tombstones(filepath.Join(archives, "acme"))
	require.NoError(t, err)

	data, err := os.ReadFile(res.Archive.Path)
	require.NoError(t, err)
	data[len(data)*2/3] ^= 0x40
	require.NoError(t, os.WriteFile(res.Archive.Path, data, 0o600))
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Source: softdelete.SourceArchive, Force: true, Options: f.Options()})
	require.Error(t, err)
	assert.False(t, rr.Changed)
	assert.Contains(t, withHint(err), "the instance was not changed")
	assert.Equal(t, live, f.Snapshot(t, "acme"), "the live instance is untouched")
	inst, err := f.Layout.Resolve(ctx, "acme", f.Options())
	require.NoError(t, err)
	assert.Equal(t, instance.StatusComplete, inst.Status)
	after, err := softdelete.Tombstones(filepath.Join(archives, "acme"))
	require.NoError(t, err)
	assert.Len(t, after, len(tombs), "no tombstone for a move that never happened")
	assert.Empty(t, stagingLeftovers(t, f, "acme"))
}

// Force with a good archive replaces the present components: the present
// ones are moved aside (kept, with a tombstone), the archived ones come back.
func TestRestore_ForceReplacesAndKeepsTheOld(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	want := f.Snapshot(t, "acme")
	_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	scribble := filepath.Join(f.Path("config", "acme"), "development.ini")
	require.NoError(t, os.WriteFile(scribble, []byte("broken\n"), 0o640))
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Source: softdelete.SourceArchive, Components: []string{"config"}, Force: true, Options: f.Options()})
	require.NoError(t, err)
	assert.True(t, rr.Changed)
	require.Len(t, rr.Replaced, 1)
	kept, err := os.ReadFile(filepath.Join(rr.Replaced[0].To, "development.ini"))
	require.NoError(t, err)
	assert.Equal(t, "broken\n", string(kept), "the replaced component is kept in quarantine")
	assert.Equal(t, want, f.Snapshot(t, "acme"))
}

// Case 5: a full disk during a restore leaves every place absent or
// complete, no staging directory behind, and a re-run with space ends
// complete and identical.
func TestRestore_FullDiskLeavesNothingHalf(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	f := fleettest.NewSpec(t, fleettest.Spec{Files: 60})
	ctx := context.Background()
	require.NoError(t, f.AddInstance(ctx, "acme"))
	want := f.Snapshot(t, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	dropQuarantine(t, f, res)
	parent := filepath.Dir(f.Path("data", "acme"))
	require.NoError(t, os.RemoveAll(parent))
	require.NoError(t, os.MkdirAll(parent, 0o755))
	require.NoError(t, syscall.Mount("tmpfs", parent, "tmpfs", 0, "size=64k"))
	mounted := true
	unmount := func() {
		if mounted {
			require.NoError(t, syscall.Unmount(parent, 0))
			mounted = false
		}
	}
	t.Cleanup(unmount)

	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no space left")
	assert.Contains(t, withHint(err), "nothing was put in place")
	assert.False(t, rr.Changed)
	assert.NoDirExists(t, f.Path("data", "acme"))
	assert.NoDirExists(t, f.Path("config", "acme"), "no component is placed while another cannot be")
	assert.Empty(t, stagingLeftovers(t, f, "acme"))
	left, _ := filepath.Glob(filepath.Join(archives, "acme", ".work-*"))
	assert.Empty(t, left)

	unmount()
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, want, f.Snapshot(t, "acme"))
}

// Case 16: a quarantine that purge emptied halfway is not restored as if
// it were whole: auto restores from the verified archive and says so;
// source=quarantine refuses.
func TestRestore_HalfPurgedQuarantineFallsBackToArchive(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	want := f.Snapshot(t, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	var dataQ string
	for _, m := range res.Quarantined {
		if m.Component == "data" {
			dataQ = m.To
		}
	}
	files, _ := filepath.Glob(filepath.Join(dataQ, "depot", "a1", "*"))
	require.Len(t, files, 5)
	for _, p := range files[:3] {
		require.NoError(t, os.Remove(p))
	}

	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Source: softdelete.SourceQuarantine, Options: f.Options()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not match its archive")
	assert.Contains(t, err.Error(), "missing")
	assert.False(t, rr.Changed)
	assert.NoDirExists(t, f.Path("config", "acme"))

	rr, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, "mixed", rr.Source)
	assert.Equal(t, "archive:"+res.Archive.Path, rr.Sources["data"])
	assert.Contains(t, strings.Join(rr.Notes, "\n"), "does not match its archive")
	assert.Contains(t, rr.Msg, "restoring data from the archive instead")
	assert.Equal(t, want, f.Snapshot(t, "acme"))
}

// Case 13b: a component of this host's layout that the newest deletion
// does not hold (it was deleted earlier under another layout of the same
// app) comes from the older deletion; one found in no deletion fails the
// restore, naming it.
func TestRestore_ComponentFromAnOlderDeletion(t *testing.T) {
	for _, source := range []string{softdelete.SourceAuto, softdelete.SourceArchive} {
		t.Run(source, func(t *testing.T) {
			f := fleettest.New(t, false, "acme")
			ctx := context.Background()
			want := f.Snapshot(t, "acme")
			archives := filepath.Join(t.TempDir(), "archives")
			// A second layout of the same app that knows only config.
			small, err := instance.ParseLayout([]byte(strings.SplitN(string(mustRead(t, f.LayoutFile)), "  - name: data", 2)[0]), filepath.Join(t.TempDir(), "small.yml"))
			require.NoError(t, err)
			require.Len(t, small.Components, 1)
			first, err := softdelete.Delete(ctx, small, request(f, archives, "acme"))
			require.NoError(t, err)
			second, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
			require.NoError(t, err)
			if source == softdelete.SourceArchive {
				dropQuarantine(t, f, first)
				dropQuarantine(t, f, second)
			}
			rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Source: source, Options: f.Options()})
			require.NoError(t, err)
			assert.Contains(t, rr.Restored, "config")
			assert.Contains(t, rr.Sources["config"], strings.TrimSuffix(filepath.Base(first.Archive.Path), ".tar.zst"))
			assert.Equal(t, want, f.Snapshot(t, "acme"))
		})
	}
}

// A component found in no deletion at all is a failure that names it,
// never a success over a partial instance.
func TestRestore_ComponentInNoDeletionFails(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	extra := string(mustRead(t, f.LayoutFile)) + "  - name: uploads\n    type: dir\n    path: " + filepath.Join(f.Root, "uploads", "{name}") + "\n"
	bigger, err := instance.ParseLayout([]byte(extra), filepath.Join(t.TempDir(), "bigger.yml"))
	require.NoError(t, err)
	rr, err := softdelete.Restore(ctx, bigger, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "uploads")
	assert.False(t, rr.Changed)
	assert.NoDirExists(t, f.Path("config", "acme"), "nothing restored when the instance cannot be made whole")
}

// Case 15: a hard link between two components. Soft delete either refuses
// (verification applies restore's checks) and moves nothing, or archives
// what restore gives back byte for byte: "verified" is never an archive
// that restore refuses.
func TestVerify_HardLinkAcrossComponentsIsRestorableOrRefused(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	shared := filepath.Join(f.Path("data", "acme"), "depot", "a1", "file-001.bin")
	require.NoError(t, os.Link(shared, filepath.Join(f.Path("config", "acme"), "shared.bin")))
	want := f.Snapshot(t, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	if err != nil {
		var ve *archive.VerifyError
		require.ErrorAs(t, err, &ve)
		assert.Equal(t, want, f.Snapshot(t, "acme"), "nothing moved")
		left, _ := filepath.Glob(filepath.Join(archives, "acme", "*.tar.zst"))
		assert.Empty(t, left, "no unrestorable archive kept")
		return
	}
	require.True(t, res.Archive.Verified)
	dropQuarantine(t, f, res)
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err, "a verified archive restores")
	assert.Equal(t, want, f.Snapshot(t, "acme"))
}

// Case 15: an archive restore refuses leaves nothing half-done: no
// component placed, no staging directory, changed false, and the refusal
// is stable on a re-run.
func TestRestore_RefusalLeavesNothingHalfDone(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	require.NoError(t, os.RemoveAll(f.Path("data", "acme")))
	require.NoError(t, os.RemoveAll(f.Path("config", "acme")))
	comps := []archive.ManifestComponent{
		{Name: "config", Type: "dir", Locator: f.Path("config", "acme"), Present: true, ArchivePath: "components/config"},
		{Name: "data", Type: "dir", Locator: f.Path("data", "acme"), Present: true, ArchivePath: "components/data"}}
	archives := filepath.Join(t.TempDir(), "archives")
	path := writeHostileArchive(t, f.App, filepath.Join(archives, "acme"), "acme", comps, []entry{
		{hdr: tarDir("components/data")},
		{hdr: tar.Header{Name: "components/data/f", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"},
		{hdr: tarLink("components/data/x", "components/config/f")},
	})
	for range 2 {
		rr, err := softdelete.Restore(context.Background(), f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
			Archive: path, Source: softdelete.SourceArchive, Options: f.Options()})
		require.Error(t, err)
		assert.False(t, rr.Changed)
		assert.NoDirExists(t, f.Path("data", "acme"))
		assert.NoDirExists(t, f.Path("config", "acme"))
		assert.Empty(t, stagingLeftovers(t, f, "acme"))
	}
}

// The lock refusal of a restore speaks of restoring.
func TestRestore_LockRefusalSpeaksOfRestoring(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	lf, err := os.OpenFile(filepath.Join(archives, "acme", ".lock"), os.O_RDWR, 0)
	require.NoError(t, err)
	defer lf.Close()
	require.NoError(t, flock(lf))
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "refusing to restore acme")
	assert.NotContains(t, err.Error(), "delete")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// withHint is the message a module shows: the error and its hint.
func withHint(err error) string {
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		return err.Error() + ". " + h.Hint()
	}
	return err.Error()
}

// Force whose replacement cannot be put in place moves the present
// component back: the live instance ends as it was, and the result says
// that something moved.
func TestRestore_ForceMovesBackOnFailure(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	live := f.Snapshot(t, "acme")
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Source: softdelete.SourceArchive, Components: []string{"config"}, Force: true, Options: f.Options(),
		AfterStep: func(step string) {
			if step == "aside:config" {
				// The staged copy disappears before it is renamed in.
				left := stagingLeftovers(t, f, "acme")
				require.Len(t, left, 1)
				require.NoError(t, os.RemoveAll(left[0]))
			}
		}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "moved back into place")
	assert.True(t, rr.Changed, "the present component moved (aside and back)")
	assert.Equal(t, live, f.Snapshot(t, "acme"))
	assert.Empty(t, stagingLeftovers(t, f, "acme"))
	tombs, err := softdelete.Tombstones(filepath.Join(archives, "acme"))
	require.NoError(t, err)
	var aside *softdelete.Tombstone
	for _, ts := range tombs {
		if ts.Reason == "replaced by a forced restore" {
			aside = ts
		}
	}
	require.NotNil(t, aside, "the move aside had its tombstone")
	assert.Empty(t, aside.Components, "the move aside was undone and recorded as such")
	assert.Equal(t, softdelete.StateRestored, aside.State)
}

// A file component is staged and renamed into place like a directory, with
// its mode, owner and mtime, from the archive.
func TestRestore_FileComponentFromArchive(t *testing.T) {
	root := t.TempDir()
	app := fleettest.RandomApp()
	yaml := "app: " + app + "\ncomponents:\n" +
		"  - name: config\n    type: file\n    path: " + filepath.Join(root, "etc", "{name}.ini") + "\n" +
		"  - name: data\n    type: dir\n    path: " + filepath.Join(root, "srv", "{name}") + "\n"
	l, err := instance.ParseLayout([]byte(yaml), filepath.Join(root, "layout.yml"))
	require.NoError(t, err)
	ini := filepath.Join(root, "etc", "acme.ini")
	require.NoError(t, os.MkdirAll(filepath.Dir(ini), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "srv", "acme"), 0o750))
	require.NoError(t, os.WriteFile(ini, []byte("[main]\nname = acme\n"), 0o640))
	require.NoError(t, os.WriteFile(filepath.Join(root, "srv", "acme", "x"), []byte("x"), 0o600))
	before := fleettest.Tree(t, filepath.Join(root, "etc"))
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, l, softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "test"})
	require.NoError(t, err)
	for _, m := range res.Quarantined {
		require.NoError(t, os.RemoveAll(m.To))
	}
	rr, err := softdelete.Restore(ctx, l, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"config", "data"}, rr.Restored)
	after := fleettest.Tree(t, filepath.Join(root, "etc"))
	require.NotEmpty(t, before["acme.ini"])
	assert.Equal(t, before["acme.ini"], after["acme.ini"], "content, mode, owner and mtime")
	left, _ := filepath.Glob(filepath.Join(root, "etc", softdelete.StagingPrefix+"*"))
	assert.Empty(t, left)
}

// A required component that was absent when the instance was deleted
// would leave a partial instance: refused unless the operator names the
// components to restore.
func TestRestore_RequiredComponentAbsentEverywhereRefused(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	want := f.Snapshot(t, "acme").Trees["config"]
	require.NoError(t, os.RemoveAll(f.Path("data", "acme")))
	archives := filepath.Join(t.TempDir(), "archives")
	_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "required component(s) data would stay absent")
	assert.False(t, rr.Changed)
	assert.NoDirExists(t, f.Path("config", "acme"))
	rr, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Components: []string{"config", "logs", "service"}, Options: f.Options()})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"config", "logs", "service"}, rr.Restored)
	assert.Equal(t, want, fleettest.Tree(t, f.Path("config", "acme")))
}
