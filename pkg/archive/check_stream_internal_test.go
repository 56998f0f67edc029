package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/encrypted"
)

type tarEntry struct {
	hdr  tar.Header
	body []byte
}

// softDeletedArchive writes the archive of an instance with nested
// directories, a hard link, a symlink, an empty file and a file
// component, as a soft delete does, and returns its entries.
func softDeletedArchive(t *testing.T) []tarEntry {
	t.Helper()
	info := writeSample(t, nil)
	return readTarEntries(t, info.Path)
}

// writeSample collects the sample instance, writes its archive into st
// (nil: a directory store) the way a soft delete does (collect, hash,
// write with its manifest and runbook) and reads it back (VerifyWritten)
// unless it was checked while written.
func writeSample(t *testing.T, st func(dir string) store.Store) *Info {
	t.Helper()
	base := t.TempDir()
	d := filepath.Join(base, "srv", "inst")
	for _, p := range []string{"a", "a/b", "a.d", "z"} {
		require.NoError(t, os.MkdirAll(filepath.Join(d, p), 0o755))
	}
	for i, p := range []string{"z/empty", "a/x.txt", "a/b/y.txt", "a.d/w", "a.txt", "top"} {
		require.NoError(t, os.WriteFile(filepath.Join(d, p), bytes.Repeat([]byte{byte('a' + i)}, i*100), 0o640))
	}
	require.NoError(t, os.Link(filepath.Join(d, "a/x.txt"), filepath.Join(d, "z/link")))
	require.NoError(t, os.Symlink("../a.txt", filepath.Join(d, "z/sym")))
	require.NoError(t, os.MkdirAll(filepath.Join(base, "etc"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(base, "etc", "inst.ini"), []byte("k=v\n"), 0o600))
	l, err := instance.ParseLayout([]byte("app: cs\ncomponents:\n  - name: data\n    type: dir\n    path: "+base+"/srv/{name}\n"+
		"  - name: config\n    type: file\n    path: "+base+"/etc/{name}.ini\n"), "cs.yml")
	require.NoError(t, err)
	dir := filepath.Join(base, "archives")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	var target store.Store
	if st != nil {
		target = st(dir)
	} else {
		target, err = store.NewFile(dir)
		require.NoError(t, err)
	}
	info, key, err := writeArchiveOf(t, l, target, func(string) {})
	require.NoError(t, err)
	// As soft delete does: an archive read back while it was written
	// (a directory store) and still the file checked needs no second
	// read-back.
	if !info.StillAsVerified() {
		require.NoError(t, VerifyWritten(context.Background(), target, key, t.TempDir()))
	}
	info.Verified = true
	return info
}

// TestCheckStream_UsedByVerifyWritten: the read-back check of a written
// archive (the one a soft delete runs: while it is written on a directory
// store, after its commit otherwise) is the streaming one, not its
// fallback, once, for a plain and an encrypted archive (whose sidecar is
// over the ciphertext).
func TestCheckStream_UsedByVerifyWritten(t *testing.T) {
	passed := 0
	checkStreamHook = func() { passed++ }
	defer func() { checkStreamHook = nil }()
	writeSample(t, nil)
	require.Equal(t, 1, passed, "plain archive")

	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	keys, err := encrypted.Ephemeral(encrypted.Keys{Recipients: []age.Recipient{id.Recipient()}})
	require.NoError(t, err)
	writeSample(t, func(dir string) store.Store {
		files, err := store.NewFile(dir)
		require.NoError(t, err)
		return encrypted.Wrap(files, keys)
	})
	require.Equal(t, 2, passed, "encrypted archive")
}

func readTarEntries(t *testing.T, path string) []tarEntry {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := zstd.NewReader(f)
	require.NoError(t, err)
	defer zr.Close()
	tr := tar.NewReader(zr)
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		out = append(out, tarEntry{hdr: *h, body: body})
	}
}

// writeTarEntries writes es as an archive with a matching sidecar (cut to
// its first keep bytes when keep > 0) and returns its store and key.
func writeTarEntries(t *testing.T, es []tarEntry, keep int) string {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	require.NoError(t, err)
	tw := tar.NewWriter(zw)
	for _, e := range es {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		require.NoError(t, tw.WriteHeader(&h))
		_, err := tw.Write(e.body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	data := buf.Bytes()
	if keep > 0 && keep < len(data) {
		data = data[:keep]
	}
	dir := filepath.Join(t.TempDir(), "inst")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	path := filepath.Join(dir, "20990101T000000Z-test.tar.zst")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	sum := sha256.Sum256(data)
	require.NoError(t, os.WriteFile(path+".sha256", []byte(hex.EncodeToString(sum[:])+"  "+filepath.Base(path)+"\n"), 0o600))
	return path
}

func withManifest(t *testing.T, es []tarEntry, change func(m *Manifest)) []tarEntry {
	t.Helper()
	m, err := DecodeManifest(bytes.NewReader(es[0].body))
	require.NoError(t, err)
	change(m)
	body, err := json.Marshal(m)
	require.NoError(t, err)
	out := append([]tarEntry(nil), es...)
	out[0].body = body
	return out
}

func filesKey(es []tarEntry, key string) []tarEntry {
	out := append([]tarEntry(nil), es...)
	out[0].body = bytes.Replace(es[0].body, []byte(`"files":`), []byte(key), 1)
	return out
}

// verdicts runs the streaming check, the one check (Check) and the
// soft delete's read-back check on the archive at path.
func verdicts(t *testing.T, path string) (stream, full, written error) {
	t.Helper()
	ctx := context.Background()
	st, key, err := FileStoreOf(path)
	require.NoError(t, err)
	stream = checkStream(ctx, st, key, t.TempDir())
	_, _, full = Check(ctx, st, key)
	written = VerifyWritten(ctx, st, key, t.TempDir())
	return stream, full, written
}

// sameVerdict asserts what VerifyWritten promises: checkStream never passes
// what Check refuses, and the read-back check's verdict and error
// are Check's.
func sameVerdict(t require.TestingT, stream, full, written error) {
	if stream == nil {
		require.NoError(t, full, "the streaming check passed an archive the one check refuses")
	}
	if full == nil {
		require.NoError(t, written)
		return
	}
	require.Error(t, written)
	require.Equal(t, full.Error(), written.Error())
}

// TestCheckStream_PassesWhatSoftDeleteWrites: the archives fleetsafe
// writes (this release's, the first format's fixture, the fuzz seed)
// pass the streaming check itself, not only through the fallback.
func TestCheckStream_PassesWhatSoftDeleteWrites(t *testing.T) {
	es := softDeletedArchive(t)
	stream, full, written := verdicts(t, writeTarEntries(t, es, 0))
	require.NoError(t, stream)
	require.NoError(t, full)
	require.NoError(t, written)
	for _, p := range []string{"testdata/v1/20261126T223757.148441Z-02ab2847.tar.zst", "testdata/seed.tar.zst"} {
		stream, full, _ := verdicts(t, writeTarEntries(t, readTarEntries(t, p), 0))
		require.NoError(t, full, p)
		require.NoError(t, stream, p)
	}
}

// TestCheckStream_RefusesAsTheOneCheck attacks the streaming check with
// each damage a stored archive can have: each is refused with exactly the
// one check's error (or passed where it passes, as a reordering of
// independent entries is).
func TestCheckStream_RefusesAsTheOneCheck(t *testing.T) {
	refusesAsTheOneCheck(t)
}

// TestCheckStream_RefusesAsTheOneCheck_HashedAside is the same attack with
// every file's content hashed on another goroutine (fileSums), as files
// of asyncSumMin and more are: a wrong content or size found there is
// refused alike.
func TestCheckStream_RefusesAsTheOneCheck_HashedAside(t *testing.T) {
	defer func(v int64) { asyncSumMin = v }(asyncSumMin)
	asyncSumMin = 0
	refusesAsTheOneCheck(t)
}

func refusesAsTheOneCheck(t *testing.T) {
	es := softDeletedArchive(t)
	idx := map[string]int{}
	for i, e := range es {
		idx[e.hdr.Name] = i
	}
	x := idx["components/data/a/x.txt"]
	y := idx["components/data/a/b/y.txt"]
	sub := idx["components/data/a/b"]
	link := idx["components/data/z/link"]
	without := func(i int) []tarEntry { return append(append([]tarEntry(nil), es[:i]...), es[i+1:]...) }
	swapped := func(i, j int) []tarEntry {
		out := append([]tarEntry(nil), es...)
		out[i], out[j] = out[j], out[i]
		return out
	}
	dupAt := func(i int) []tarEntry {
		return append(append(append([]tarEntry(nil), es[:i+1]...), es[i]), es[i+1:]...)
	}
	extra := append(append([]tarEntry(nil), es...), tarEntry{hdr: es[x].hdr, body: es[x].body})
	extra[len(extra)-1].hdr.Name = "components/data/a/extra"
	bigger := append([]tarEntry(nil), es...)
	bigger[x].body = append(append([]byte(nil), es[x].body...), 'z')
	flipped := append([]tarEntry(nil), es...)
	flipped[x].body = append([]byte(nil), es[x].body...)
	flipped[x].body[0] ^= 1
	whole := writeTarEntries(t, es, 0)
	size := func() int { fi, err := os.Stat(whole); require.NoError(t, err); return int(fi.Size()) }()
	moveFile := func(from, to int) func(*Manifest) {
		return func(m *Manifest) {
			e := m.Files[from]
			m.Files = append(m.Files[:from], m.Files[from+1:]...)
			m.Files = append(m.Files[:to], append([]FileEntry{e}, m.Files[to:]...)...)
		}
	}
	cases := []struct {
		name   string
		path   string
		refuse bool
	}{
		{"entry missing", writeTarEntries(t, without(y), 0), true},
		{"hard link target missing", writeTarEntries(t, without(x), 0), true},
		{"entry twice", writeTarEntries(t, dupAt(y), 0), true},
		{"manifest.json twice", writeTarEntries(t, dupAt(0), 0), true},
		{"RESTORE.md twice", writeTarEntries(t, dupAt(1), 0), true},
		{"extra entry", writeTarEntries(t, extra, 0), true},
		{"hard link before its target", writeTarEntries(t, swapped(x, link), 0), true},
		{"child before its directory", writeTarEntries(t, swapped(sub, y), 0), false},
		{"two files swapped", writeTarEntries(t, swapped(x, idx["components/data/a.txt"]), 0), false},
		{"RESTORE.md last", writeTarEntries(t, append(without(1), es[1]), 0), false},
		{"manifest not first", writeTarEntries(t, swapped(0, 1), 0), true},
		{"wrong size", writeTarEntries(t, bigger, 0), true},
		{"wrong content", writeTarEntries(t, flipped, 0), true},
		{"truncated", writeTarEntries(t, es, size*2/3), true},
		{"truncated at the end", writeTarEntries(t, es, size-3), true},
		{"manifest digest wrong", writeTarEntries(t, withManifest(t, es, func(m *Manifest) { m.Files[x-2].SHA256 = m.Files[x-3].SHA256 }), 0), true},
		{"manifest entry missing", writeTarEntries(t, withManifest(t, es, func(m *Manifest) { m.Files = m.Files[:len(m.Files)-1] }), 0), true},
		{"manifest entry twice", writeTarEntries(t, withManifest(t, es, func(m *Manifest) { m.Files = append(m.Files, m.Files[len(m.Files)-1]) }), 0), true},
		{"manifest child before its directory", writeTarEntries(t, withManifest(t, es, moveFile(sub-2, y-2)), 0), true},
		// The archive in the manifest's order: only the manifest's own
		// checks (planStream) can refuse.
		{"child before its directory in the manifest and the archive alike", writeTarEntries(t, func() []tarEntry {
			out := withManifest(t, es, func(m *Manifest) { m.Files[sub-2], m.Files[y-2] = m.Files[y-2], m.Files[sub-2] })
			out[sub], out[y] = out[y], out[sub]
			return out
		}(), 0), true},
		{"manifest names out of order", writeTarEntries(t, withManifest(t, es, moveFile(x-2, x-1)), 0), false},
		{"manifest top twice", writeTarEntries(t, withManifest(t, es, func(m *Manifest) { m.Files = append(m.Files[:1], m.Files...) }), 0), true},
		{"component twice", writeTarEntries(t, withManifest(t, es, func(m *Manifest) { m.Components = append(m.Components, m.Components[0]) }), 0), true},
		{"file list under another key case", writeTarEntries(t, filesKey(es, `"Files":`), 0), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stream, full, written := verdicts(t, c.path)
			if c.name != "RESTORE.md last" {
				require.Error(t, stream, "the streaming check passes only archives in the order fleetsafe writes")
			}
			sameVerdict(t, stream, full, written)
			if c.refuse {
				require.Error(t, full)
			} else {
				require.NoError(t, full)
			}
		})
	}
}

// TestCheckStream_NeverPassesWhatTheOneCheckRefuses: random damage of
// every kind, several at once, to the entries, their order and the
// manifest: the read-back check's verdict and error are always the one
// check's, and the streaming check passes nothing it refuses.
func TestCheckStream_NeverPassesWhatTheOneCheckRefuses(t *testing.T) {
	es := softDeletedArchive(t)
	rapid.Check(t, func(rt *rapid.T) {
		// Content hashed in line or on another goroutine (fileSums).
		defer func(v int64) { asyncSumMin = v }(asyncSumMin)
		asyncSumMin = rapid.SampledFrom([]int64{0, 256 << 10}).Draw(rt, "asyncSumMin")
		cur := append([]tarEntry(nil), es...)
		for range rapid.IntRange(1, 3).Draw(rt, "damages") {
			n := len(cur)
			if n < 2 {
				break
			}
			i := rapid.IntRange(0, n-1).Draw(rt, "i")
			j := rapid.IntRange(0, n-1).Draw(rt, "j")
			switch rapid.IntRange(0, 7).Draw(rt, "op") {
			case 0: // drop
				cur = append(cur[:i:i], cur[i+1:]...)
			case 1: // twice
				cur = append(append(cur[:i+1:i+1], cur[i]), cur[i+1:]...)
			case 2: // swap
				cur[i], cur[j] = cur[j], cur[i]
			case 3: // rename as another
				cur[i].hdr.Name = cur[j].hdr.Name
			case 4: // content
				if len(cur[i].body) > 0 && i > 0 {
					b := append([]byte(nil), cur[i].body...)
					b[rapid.IntRange(0, len(b)-1).Draw(rt, "byte")] ^= 0x20
					cur[i].body = b
				}
			case 5: // kind or mode
				cur[i].hdr.Mode ^= 0o100
			case 6, 7: // the manifest's file list
				if cur[0].hdr.Name != "manifest.json" {
					continue
				}
				m, err := DecodeManifest(bytes.NewReader(cur[0].body))
				if err != nil || len(m.Files) == 0 {
					continue
				}
				a := rapid.IntRange(0, len(m.Files)-1).Draw(rt, "a")
				b := rapid.IntRange(0, len(m.Files)-1).Draw(rt, "b")
				switch rapid.IntRange(0, 3).Draw(rt, "mop") {
				case 0:
					m.Files[a], m.Files[b] = m.Files[b], m.Files[a]
				case 1:
					m.Files = append(m.Files[:a:a], m.Files[a+1:]...)
				case 2:
					m.Files = append(m.Files[:a+1:a+1], m.Files[a:]...)
				case 3:
					m.Files[a].Path = m.Files[b].Path
				}
				body, err := json.Marshal(m)
				require.NoError(rt, err)
				cur[0].body = body
			}
		}
		dir := t.TempDir()
		path := writeTarEntriesIn(rt, dir, cur)
		ctx := context.Background()
		st, key, err := FileStoreOf(path)
		require.NoError(rt, err)
		stream := checkStream(ctx, st, key, dir)
		_, _, full := Check(ctx, st, key)
		written := VerifyWritten(ctx, st, key, dir)
		sameVerdict(rt, stream, full, written)
	})
}

func writeTarEntriesIn(t require.TestingT, dir string, es []tarEntry) string {
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	require.NoError(t, err)
	tw := tar.NewWriter(zw)
	for _, e := range es {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		require.NoError(t, tw.WriteHeader(&h))
		_, err := tw.Write(e.body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "inst"), 0o700))
	path := filepath.Join(dir, "inst", fmt.Sprintf("20990101T000000Z-%d.tar.zst", time.Now().UnixNano()))
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	sum := sha256.Sum256(buf.Bytes())
	require.NoError(t, os.WriteFile(path+".sha256", []byte(hex.EncodeToString(sum[:])+"  "+filepath.Base(path)+"\n"), 0o600))
	return path
}

// syntheticArchive writes an archive of n files of 100 bytes, 100 to a
// directory, as the soft delete writes it, holding nothing once written.
func syntheticArchive(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "inst")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	path := filepath.Join(dir, "20990101T000000Z-mem.tar.zst")
	out, err := os.Create(path)
	require.NoError(t, err)
	h := sha256.New()
	zw, err := zstd.NewWriter(io.MultiWriter(out, h))
	require.NoError(t, err)
	tw := tar.NewWriter(zw)
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	body := bytes.Repeat([]byte("0123456789"), 10)
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	entry := func(i int) (FileEntry, []byte) {
		switch {
		case i < 0:
			return FileEntry{Component: "data", Path: "components/data", Type: "dir", Mode: 0o755, MTime: mtime}, nil
		case i%101 == 0:
			return FileEntry{Component: "data", Path: fmt.Sprintf("components/data/d%06d", i/101), Type: "dir", Mode: 0o755, MTime: mtime}, nil
		default:
			return FileEntry{Component: "data", Path: fmt.Sprintf("components/data/d%06d/f%06d", i/101, i), Type: "file", Mode: 0o644,
				MTime: mtime, Size: int64(len(body)), SHA256: digest}, body
		}
	}
	total := n + n/100 + 1
	var mbuf bytes.Buffer
	head, err := json.Marshal(Manifest{Format: Format, ID: "mem", Instance: "inst", App: "mem", CreatedAt: mtime,
		Components: []ManifestComponent{{Name: "data", Type: "dir", Locator: "/srv/inst", Present: true, ArchivePath: "components/data"}}})
	require.NoError(t, err)
	pre, post, ok := bytes.Cut(head, []byte(`"files":null`))
	require.True(t, ok)
	mbuf.Write(pre)
	mbuf.WriteString(`"files":[`)
	for i := -1; i < total-1; i++ {
		e, _ := entry(i)
		b, err := json.Marshal(e)
		require.NoError(t, err)
		if i >= 0 {
			mbuf.WriteByte(',')
		}
		mbuf.Write(b)
	}
	mbuf.WriteByte(']')
	mbuf.Write(post)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(mbuf.Len()), ModTime: mtime, Format: tar.FormatPAX}))
	_, err = tw.Write(mbuf.Bytes())
	require.NoError(t, err)
	mbuf = bytes.Buffer{}
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "RESTORE.md", Typeflag: tar.TypeReg, Mode: 0o600, Size: 2, ModTime: mtime, Format: tar.FormatPAX}))
	_, err = tw.Write([]byte("#\n"))
	require.NoError(t, err)
	for i := -1; i < total-1; i++ {
		e, b := entry(i)
		hdr := &tar.Header{Name: e.Path, Mode: int64(e.Mode), ModTime: mtime, Format: tar.FormatPAX, Typeflag: tar.TypeDir}
		if e.Type == "file" {
			hdr.Typeflag, hdr.Size = tar.TypeReg, e.Size
		}
		require.NoError(t, tw.WriteHeader(hdr))
		_, err := tw.Write(b)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	require.NoError(t, out.Close())
	require.NoError(t, os.WriteFile(path+".sha256", []byte(hex.EncodeToString(h.Sum(nil))+"  "+filepath.Base(path)+"\n"), 0o600))
	return path
}

// TestCheckStream_MemoryFlat bounds the read-back check's memory: the heap
// in use at its end, after a collection, is the same within 2 MiB for
// 5,000 and for 50,000 files (the one check holds about 500 bytes a
// file: over 20 MiB more at 50,000).
func TestCheckStream_MemoryFlat(t *testing.T) {
	inUse := func(n int) uint64 {
		path := syntheticArchive(t, n)
		st, key, err := FileStoreOf(path)
		require.NoError(t, err)
		var got uint64
		checkStreamHook = func() {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			got = ms.HeapInuse
		}
		defer func() { checkStreamHook = nil }()
		runtime.GC()
		require.NoError(t, checkStream(context.Background(), st, key, t.TempDir()))
		require.NotZero(t, got, "the streaming check passed without reaching its end")
		return got
	}
	small := inUse(5000)
	large := inUse(50000)
	t.Logf("heap in use at the end of the check: %d KiB at 5,000 files, %d KiB at 50,000", small>>10, large>>10)
	assert.LessOrEqual(t, int64(large)-int64(small), int64(2<<20))
}
