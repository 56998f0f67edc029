package archive

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// followFixture is an instance of a few files (one of 2 MiB of random
// bytes, so that the archive is written in several blocks while it is
// read back), its layout and the directory store its archive goes to.
func followFixture(t *testing.T) (*instance.Layout, store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	inst := filepath.Join(dir, "srv", "inst")
	require.NoError(t, os.MkdirAll(filepath.Join(inst, "text"), 0o755))
	big := make([]byte, 2<<20)
	_, err := rand.Read(big)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(inst, "big.bin"), big, 0o644))
	for i := range 50 {
		require.NoError(t, os.WriteFile(filepath.Join(inst, "text", fmt.Sprintf("f%02d.txt", i)), []byte(strings.Repeat("line\n", i+1)), 0o644))
	}
	l, err := instance.ParseLayout([]byte("app: follow\ncomponents:\n  - name: data\n    type: dir\n    path: "+filepath.Join(dir, "srv")+"/{name}\n"), "follow.yml")
	require.NoError(t, err)
	archives := filepath.Join(dir, "archives")
	require.NoError(t, os.MkdirAll(archives, 0o700))
	st, err := store.NewFile(archives)
	require.NoError(t, err)
	return l, st, archives
}

// writeArchiveOf collects instance "inst" of l and writes its archive to
// st as a soft delete does (collect, hash, Collector.Write with its
// manifest and runbook), step called at each of the writer's steps; it
// returns what Write returns and the archive's key.
func writeArchiveOf(t *testing.T, l *instance.Layout, st store.Store, step func(string)) (*Info, string, error) {
	t.Helper()
	col := NewCollector(nil)
	col.HashSmall = true
	spoolDir := t.TempDir()
	col.KeepRecords(func() (*os.File, error) { return os.CreateTemp(spoolDir, "files-*.spool") })
	defer col.Close()
	m := &Manifest{Format: Format, ID: "20260101T000000.000000Z-0000f011", Instance: "inst", App: l.App,
		ToolVersion: Version, CreatedAt: time.Now().UTC(), Files: []FileEntry{}, Databases: []DumpEntry{}}
	for i, c := range l.Components {
		tg := targetOf(t, l, i, "inst")
		require.NoError(t, col.AddComponent(tg))
		m.Components = append(m.Components, ManifestComponent{Name: c.Name, Type: c.Type, Locator: tg.Locator, Present: true, ArchivePath: "components/" + c.Name})
	}
	require.NoError(t, col.Err("inst"))
	require.NoError(t, col.HashAll())
	key := "inst/" + m.ID + ".tar.zst"
	info, err := col.Write(context.Background(), st, key, m, Runbook(m, st.Location(key)), nil, t.TempDir(), step)
	return info, key, err
}

// flipEveryFile changes one byte in the middle of every regular file
// under dir, hidden ones included, and returns their paths.
func flipEveryFile(t *testing.T, dir string, keep func(string) bool) []string {
	t.Helper()
	var flipped []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() || !keep(p) {
			return err
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || fi.Size() == 0 {
			return err
		}
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, fi.Size()/2); err != nil {
			return err
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, fi.Size()/2); err != nil {
			return err
		}
		flipped = append(flipped, p)
		return nil
	})
	require.NoError(t, err)
	return flipped
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestFollowedArchive_TamperBeforeCommit: the archive is read back while
// it is written, and committed after the check; anything that changes a
// file of the store's directory between the check and the commit (here:
// every file it finds, a byte each) either makes the writing fail or
// finds no archive to change: the archive committed is, byte for byte,
// what was checked and what its sidecar says. An archive written under a
// temporary name, checked and then linked without comparing its stamps,
// would fail here.
func TestFollowedArchive_TamperBeforeCommit(t *testing.T) {
	l, st, dir := followFixture(t)
	ran := false
	followArchiveHook = func(*store.FollowWriter) {
		ran = true
		flipEveryFile(t, dir, func(p string) bool { return !strings.HasSuffix(p, ".json") && !strings.HasSuffix(p, ".lock") })
	}
	t.Cleanup(func() { followArchiveHook = nil })
	info, key, err := writeArchiveOf(t, l, st, func(string) {})
	require.True(t, ran, "the archive was checked before its commit")
	if err != nil {
		_, serr := st.Stat(context.Background(), key)
		require.Error(t, serr, "a failed writing commits no archive")
		return
	}
	require.True(t, info.Verified && info.StillAsVerified(), "verified while written, and still the file checked")
	require.Equal(t, info.SHA256, fileSHA256(t, info.Path), "the archive committed is what its sidecar says")
	cmd := exec.Command("sha256sum", "-c", filepath.Base(info.Path)+sidecar.Suffix)
	cmd.Dir = filepath.Dir(info.Path)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "sha256sum -c checks the sidecar by hand: %s", out)
	_, err = VerifyArchive(context.Background(), info.Path)
	require.NoError(t, err, "the archive committed passes the check")
}

// TestFollowedArchive_TamperAfterCommit: a byte of the archive changed
// after its commit and before the point where the read-back used to run
// (after the commit, the sidecar, the runbook; soft delete then asks
// StillAsVerified) is refused as before: the archive's stamp has changed,
// so StillAsVerified is false and the read-back after the commit
// (VerifyWritten) finds the difference. Without that re-check the archive
// checked before its commit would pass.
func TestFollowedArchive_TamperAfterCommit(t *testing.T) {
	for _, step := range []string{"archive:committed", "archive:sidecar", "archive"} {
		t.Run(step, func(t *testing.T) {
			l, st, dir := followFixture(t)
			checked := false
			followArchiveHook = func(*store.FollowWriter) { checked = true }
			t.Cleanup(func() { followArchiveHook = nil })
			var flipped []string
			flip := func() {
				flipped = flipEveryFile(t, dir, func(p string) bool { return strings.HasSuffix(p, ".tar.zst") })
			}
			info, key, err := writeArchiveOf(t, l, st, func(s string) {
				if s == step {
					flip()
				}
			})
			require.NoError(t, err)
			if step == "archive" { // what soft delete's own step "archive" sees: Write has returned
				flip()
			}
			require.True(t, checked, "the archive was checked before its commit")
			require.Len(t, flipped, 1, "the archive was changed")
			require.False(t, info.StillAsVerified(), "a changed archive is no longer the one verified")
			err = VerifyWritten(context.Background(), st, key, t.TempDir())
			var ve *VerifyError
			require.True(t, errors.As(err, &ve), "refused as a corrupted archive: %v", err)
		})
	}
}
