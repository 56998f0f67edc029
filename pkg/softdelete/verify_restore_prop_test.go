package softdelete_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// propEntry is one archive entry and the component its manifest entry
// claims.
type propEntry struct {
	hdr  tar.Header
	body string
	comp string
}

// writePropArchive writes an internally consistent archive (manifest
// listing every entry with its checksum, header metadata equal to the
// manifest's, matching sidecar) holding arbitrary entries.
func writePropArchive(t *testing.T, app, dir, name string, comps []archive.ManifestComponent, entries []propEntry) string {
	t.Helper()
	mtime := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
	m := archive.Manifest{Format: archive.Format, ID: "p", Instance: name, App: app, Components: comps, CreatedAt: mtime}
	for i := range entries {
		e := &entries[i]
		e.hdr.ModTime, e.hdr.Format = mtime, tar.FormatPAX
		fm := e.hdr.FileInfo().Mode()
		fe := archive.FileEntry{Path: e.hdr.Name, Component: e.comp, MTime: mtime, UID: e.hdr.Uid, GID: e.hdr.Gid,
			Mode: uint32(fm.Perm() | fm&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))}
		switch e.hdr.Typeflag {
		case tar.TypeReg:
			sum := sha256.Sum256([]byte(e.body))
			fe.Type, fe.SHA256, fe.Size = "file", hex.EncodeToString(sum[:]), int64(len(e.body))
		case tar.TypeDir:
			fe.Type = "dir"
		case tar.TypeLink:
			fe.Type, fe.LinkTarget = "hardlink", e.hdr.Linkname
		case tar.TypeSymlink:
			fe.Type, fe.LinkTarget, fe.Mode = "symlink", e.hdr.Linkname, 0o777
		default:
			fe.Type = "fifo"
		}
		m.Files = append(m.Files, fe)
	}
	manifest, err := json.Marshal(m)
	require.NoError(t, err)
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	require.NoError(t, err)
	tw := tar.NewWriter(zw)
	all := append([]propEntry{{hdr: tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o600, ModTime: mtime, Format: tar.FormatPAX}, body: string(manifest)}}, entries...)
	for _, e := range all {
		h := e.hdr
		h.Size = 0
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
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
	path := filepath.Join(dir, "20990101T000000Z-prop.tar.zst")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	sum := sha256.Sum256(buf.Bytes())
	require.NoError(t, os.WriteFile(path+".sha256", []byte(hex.EncodeToString(sum[:])+"  "+filepath.Base(path)+"\n"), 0o600))
	return path
}

// genEntries draws a mostly plausible, sometimes hostile set of entries:
// trees built parents first, with now and then a name that climbs out, is
// not clean or sits under a link, a hard link across components or to
// nothing, a claim of the wrong component, a FIFO.
func genEntries(rng *rand.Rand) []propEntry {
	comps := []string{"config", "data"}
	hostile := rng.IntN(2) == 0 // half the archives stay plausible
	rare := func(n int) bool { return hostile && rng.IntN(n) == 0 }
	used := map[string]bool{}
	files := map[string][]string{}
	var out []propEntry
	dirs := map[string][]string{}
	var names []string
	for _, c := range comps {
		if !rare(10) {
			top := "components/" + c
			out = append(out, propEntry{hdr: tar.Header{Name: top, Typeflag: tar.TypeDir, Mode: 0o750}, comp: c})
			dirs[c] = append(dirs[c], top)
		}
	}
	segs := []string{"a", "b", "c", "d e", "f", "g", "..", ".", "", "ü"}
	for range 1 + rng.IntN(8) {
		c := comps[rng.IntN(2)]
		parent := "components/" + c
		if len(dirs[c]) > 0 && !rare(10) {
			parent = dirs[c][rng.IntN(len(dirs[c]))]
		}
		seg := segs[rng.IntN(6)]
		if rare(6) {
			seg = segs[6+rng.IntN(len(segs)-6)]
		}
		name := parent + "/" + seg
		if used[name] && !rare(3) {
			continue
		}
		used[name] = true
		if rare(10) && len(names) > 0 {
			name = names[rng.IntN(len(names))] + "/x" // under a file or link
		}
		claim := c
		if rare(10) {
			claim = comps[1-rng.IntN(2)]
		}
		e := propEntry{comp: claim}
		k := rng.IntN(11)
		if rare(4) {
			k = 11
		}
		switch {
		case k < 3:
			e.hdr = tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: int64([]int{0o700, 0o755, 0o2775}[rng.IntN(3)])}
			dirs[c] = append(dirs[c], name)
		case k < 8:
			e.hdr = tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: int64([]int{0o600, 0o644, 0o4755}[rng.IntN(3)]), Uid: rng.IntN(2) * 1000}
			e.body = strings.Repeat("z", rng.IntN(40))
			files[c] = append(files[c], name)
		case k < 10:
			e.hdr = tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: []string{"/etc", "..", "a", "../../../x"}[rng.IntN(4)]}
		case k < 11 && len(files[c]) > 0 && !rare(3):
			e.hdr = tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: files[c][rng.IntN(len(files[c]))], Mode: 0o644}
		case k < 11 && len(names) > 0:
			e.hdr = tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: names[rng.IntN(len(names))], Mode: 0o644}
		default:
			e.hdr = tar.Header{Name: name, Typeflag: tar.TypeFifo, Mode: 0o644}
		}
		if e.hdr.Typeflag != tar.TypeDir && strings.HasSuffix(e.hdr.Name, "/") {
			e.hdr.Name += "." // tar refuses a trailing slash on a non-directory
		}
		out = append(out, e)
		names = append(names, e.hdr.Name)
	}
	return out
}

// TestProperty_VerifiedMeansRestorable draws archives and checks the
// guarantee both ways: an archive that VerifyArchive passes is restored
// without error (restore re-checks the staged tree against the manifest),
// and one it refuses is refused by restore too, with nothing created and
// no staging directory left.
func TestProperty_VerifiedMeansRestorable(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	comps := []archive.ManifestComponent{
		{Name: "config", Type: "dir", Locator: f.Path("config", "acme"), Present: true, ArchivePath: "components/config"},
		{Name: "data", Type: "dir", Locator: f.Path("data", "acme"), Present: true, ArchivePath: "components/data"}}
	verified := 0
	for i := range 120 {
		for _, c := range comps {
			require.NoError(t, os.RemoveAll(c.Locator))
		}
		archives := filepath.Join(t.TempDir(), "archives")
		entries := genEntries(rng)
		path := writePropArchive(t, f.App, filepath.Join(archives, "acme"), "acme", comps, entries)
		_, verr := archive.VerifyArchive(ctx, path)
		rr, rerr := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
			Archive: path, Source: softdelete.SourceArchive, Components: []string{"config", "data"}, Options: f.Options()})
		desc := func() string {
			var b strings.Builder
			for _, e := range entries {
				b.WriteString("\n  " + string(e.hdr.Typeflag) + " " + e.comp + " " + e.hdr.Name + " -> " + e.hdr.Linkname)
			}
			return b.String()
		}
		if verr == nil {
			verified++
			require.NoError(t, rerr, "iteration %d: verified but not restorable:%s", i, desc())
			require.ElementsMatch(t, []string{"config", "data"}, rr.Restored)
		} else {
			if os.Getenv("PROP_DEBUG") != "" {
				t.Logf("refused: %v", verr)
			}
			require.Error(t, rerr, "iteration %d: refused by verify (%v) but restored:%s", i, verr, desc())
			require.False(t, rr.Changed, "iteration %d: a refusal changed something: %v", i, rerr)
			for _, c := range comps {
				require.NoDirExists(t, c.Locator, "iteration %d: %v", i, rerr)
			}
		}
		require.Empty(t, stagingLeftovers(t, f, "acme"), "iteration %d", i)
	}
	t.Logf("%d of 120 archives verified", verified)
	require.Greater(t, verified, 30, "the generator must reach the verified side too")
}
