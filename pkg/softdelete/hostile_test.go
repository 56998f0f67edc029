package softdelete_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

type entry struct {
	hdr  tar.Header
	body string
}

// writeHostileArchive builds an archive that is internally consistent (its
// manifest lists every entry with the right checksum, its sidecar matches)
// but carries the given entries, as an attacker with write access to the
// archive directory could.
func writeHostileArchive(t *testing.T, app, dir, name string, comps []archive.ManifestComponent, entries []entry) string {
	t.Helper()
	m := archive.Manifest{Format: archive.Format, ID: "x", Instance: name, App: app, Components: comps, CreatedAt: time.Now()}
	for _, e := range entries {
		fe := archive.FileEntry{Path: e.hdr.Name, Component: "data", Mode: uint32(e.hdr.Mode), MTime: time.Unix(0, 0).UTC()}
		if e.hdr.Typeflag == tar.TypeSymlink {
			fe.Mode = 0o777
		}
		switch e.hdr.Typeflag {
		case tar.TypeReg:
			sum := sha256.Sum256([]byte(e.body))
			fe.Type, fe.SHA256, fe.Size = "file", hex.EncodeToString(sum[:]), int64(len(e.body))
		case tar.TypeDir:
			fe.Type = "dir"
		case tar.TypeLink:
			fe.Type, fe.LinkTarget = "hardlink", e.hdr.Linkname
		default:
			fe.Type, fe.LinkTarget = "symlink", e.hdr.Linkname
		}
		m.Files = append(m.Files, fe)
	}
	manifest, err := json.Marshal(m)
	require.NoError(t, err)
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	require.NoError(t, err)
	tw := tar.NewWriter(zw)
	all := append([]entry{{hdr: tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o600}, body: string(manifest)}}, entries...)
	for _, e := range all {
		h := e.hdr
		h.ModTime = time.Unix(0, 0)
		h.Format = tar.FormatPAX
		h.Size = int64(len(e.body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		require.NoError(t, tw.WriteHeader(&h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	require.NoError(t, os.MkdirAll(dir, 0o700))
	path := filepath.Join(dir, "20990101T000000Z-evil.tar.zst")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	sum := sha256.Sum256(buf.Bytes())
	require.NoError(t, os.WriteFile(path+".sha256", []byte(hex.EncodeToString(sum[:])+"  "+filepath.Base(path)+"\n"), 0o600))
	return path
}

func TestRestore_MaliciousArchives(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	dataPath := f.Path("data", "acme")
	require.NoError(t, os.RemoveAll(dataPath)) // the data component is missing and will be restored
	comps := []archive.ManifestComponent{{Name: "data", Type: "dir", Locator: dataPath, Present: true, ArchivePath: "components/data"}}
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	dir := func(n string) entry {
		return entry{hdr: tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755}}
	}
	file := func(n string) entry {
		return entry{hdr: tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644}, body: "pwned"}
	}
	cases := map[string][]entry{
		"dotdot":        {dir("components/data"), file("components/data/../../../../" + victim)},
		"absolute":      {dir("components/data"), file(victim)},
		"climb in name": {dir("components/data"), file("components/../../victim")},
		"write through a link out": {dir("components/data"),
			{hdr: tar.Header{Name: "components/data/out", Typeflag: tar.TypeSymlink, Linkname: outside}},
			file("components/data/out/victim")},
		"hard link out": {dir("components/data"),
			{hdr: tar.Header{Name: "components/data/h", Typeflag: tar.TypeLink, Linkname: "../../../etc/passwd"}}},
		"device": {dir("components/data"),
			{hdr: tar.Header{Name: "components/data/dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}},
		"fifo": {dir("components/data"),
			{hdr: tar.Header{Name: "components/data/fifo", Typeflag: tar.TypeFifo}}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			archives := filepath.Join(t.TempDir(), "archives")
			path := writeHostileArchive(t, f.App, filepath.Join(archives, "acme"), "acme", comps, entries)
			_, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
				Source: softdelete.SourceArchive, Archive: path, Options: f.Options()})
			require.Error(t, err)
			_, serr := os.Lstat(victim)
			assert.True(t, os.IsNotExist(serr), "nothing written outside the component: %v", err)
			os.RemoveAll(dataPath)
		})
	}
}

// A symlink inside an instance that points anywhere is restored exactly as
// it was; it is never written through.
func TestRestore_LinksComeBackAsLinks(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	dataPath := f.Path("data", "acme")
	require.NoError(t, os.RemoveAll(dataPath))
	comps := []archive.ManifestComponent{{Name: "data", Type: "dir", Locator: dataPath, Present: true, ArchivePath: "components/data"}}
	archives := filepath.Join(t.TempDir(), "archives")
	path := writeHostileArchive(t, f.App, filepath.Join(archives, "acme"), "acme", comps, []entry{
		{hdr: tar.Header{Name: "components/data", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "components/data/etc-link", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
	})
	_, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Source: softdelete.SourceArchive, Archive: path, Options: f.Options()})
	require.NoError(t, err)
	target, err := os.Readlink(filepath.Join(dataPath, "etc-link"))
	require.NoError(t, err)
	assert.Equal(t, "/etc", target)
}

func TestRestore_TamperedArchiveRefusedBeforeWriting(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	// Purge the quarantine, then flip one byte of the archive.
	for _, m := range res.Quarantined {
		if m.Type == "postgresql" {
			require.NoError(t, fleettest.DropDatabasesLike(ctx, f.PG, m.To))
		} else {
			require.NoError(t, os.RemoveAll(m.To))
		}
	}
	data, err := os.ReadFile(res.Archive.Path)
	require.NoError(t, err)
	data[len(data)/2] ^= 1
	require.NoError(t, os.WriteFile(res.Archive.Path, data, 0o600))
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	var ve *archive.VerifyError
	require.True(t, errors.As(err, &ve), "%v", err)
	_, err = os.Stat(f.Path("config", "acme"))
	assert.True(t, os.IsNotExist(err), "nothing restored from a tampered archive")
}

func TestRestore_ForceMovesPresentAside(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	before := f.Snapshot(t, "acme")
	_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	// Someone recreated config by hand meanwhile.
	cfg := f.Path("config", "acme")
	require.NoError(t, os.MkdirAll(cfg, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(cfg, "handmade.ini"), []byte("x"), 0o644))

	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.Contains(t, rr.NotRestored, "config", "without force a present component is left alone")
	_, err = os.Stat(filepath.Join(cfg, "handmade.ini"))
	require.NoError(t, err)

	rr, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Force: true,
		Source: softdelete.SourceArchive, Components: []string{"config"}, Options: f.Options()})
	require.NoError(t, err)
	require.Len(t, rr.Replaced, 1)
	assert.Equal(t, before.Trees["config"], fleettest.Tree(t, cfg))
	_, err = os.Stat(filepath.Join(rr.Replaced[0].To, "handmade.ini"))
	assert.NoError(t, err, "the replaced copy is in quarantine, not lost")
}

// No running systemd exists on the test machines: this fake systemctl
// reports the unit active until it is stopped.
func TestDelete_ActiveUnit(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "stopped")
	fake := filepath.Join(t.TempDir(), "systemctl")
	script := "#!/bin/sh\ncase \"$1\" in\nlist-units) ;;\n" +
		"show) if [ -e " + state + " ]; then printf 'LoadState=loaded\\nActiveState=inactive\\n'; else printf 'LoadState=loaded\\nActiveState=active\\n'; fi;;\n" +
		"stop) touch " + state + ";;\nesac\n"
	require.NoError(t, os.WriteFile(fake, []byte(script), 0o755))
	opts := f.Options()
	opts.Systemctl = fake
	archives := filepath.Join(t.TempDir(), "archives")
	req := softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "r", Options: opts}
	_, err := softdelete.Delete(ctx, f.Layout, req)
	var re *softdelete.RefusedError
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Contains(t, err.Error(), "is active")
	_, err = os.Stat(f.Path("config", "acme"))
	require.NoError(t, err)

	req.StopService = true
	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	assert.True(t, res.Changed)
	_, err = os.Stat(state)
	assert.NoError(t, err, "systemctl stop was called")
}
