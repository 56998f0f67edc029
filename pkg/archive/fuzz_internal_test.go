package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

func seed(f *testing.F, name string) []byte {
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	return data
}

// FuzzVerifyArchive reads arbitrary bytes as an archive with a matching
// sidecar, seeded with a real fleetsafe archive: never a panic, a hang or
// an unbounded allocation; an accepted archive starts with its manifest.
func FuzzVerifyArchive(f *testing.F) {
	real := seed(f, "seed.tar.zst")
	f.Add(real)
	f.Add(real[:len(real)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "a.tar.zst")
		sum := sha256.Sum256(data)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".sha256", []byte(hex.EncodeToString(sum[:])+"  a.tar.zst\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var m *Manifest
		var err error
		fleettest.Deadline(t, 10*time.Second, func() { m, err = VerifyArchive(context.Background(), path) })
		if err == nil && m == nil {
			t.Fatal("accepted without a manifest")
		}
	})
}

// FuzzDecodeManifest: the streaming manifest reader agrees with the
// writer on everything the writer produces, and survives anything else.
func FuzzDecodeManifest(f *testing.F) {
	f.Add(seed(f, "seed.manifest.json"))
	f.Add([]byte(`{"files": null}`))
	f.Add([]byte(`{"files": [{"path": "a", "path_base64": "////"}], "instance": 3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeManifest(bytes.NewReader(data))
		if err != nil {
			return
		}
		var srcs []*source
		for _, e := range m.Files {
			srcs = append(srcs, &source{entry: e})
		}
		var out bytes.Buffer
		if err := encodeManifest(&out, m, sliceSeq(srcs)); err != nil {
			t.Fatal(err)
		}
		back, err := DecodeManifest(&out)
		if err != nil {
			t.Fatalf("cannot read back what was written: %v", err)
		}
		if len(back.Files) != len(m.Files) || back.Instance != m.Instance {
			t.Fatalf("round trip changed the manifest")
		}
	})
}

// FuzzCheckEntry: an accepted entry never names a place outside the
// archive root, and is of a kind that restore writes.
func FuzzCheckEntry(f *testing.F) {
	f.Add("components/data/a.txt", "", byte(tar.TypeReg))
	f.Add("components/data/../../etc/passwd", "", byte(tar.TypeReg))
	f.Add("/etc/passwd", "", byte(tar.TypeReg))
	f.Add("components/data/l", "/etc", byte(tar.TypeSymlink))
	f.Add("components/data/h", "../../x", byte(tar.TypeLink))
	f.Add("components/data/dev", "", byte(tar.TypeChar))
	f.Fuzz(func(t *testing.T, name, link string, typ byte) {
		hdr := &tar.Header{Name: name, Linkname: link, Typeflag: typ}
		if CheckEntry(hdr) != nil {
			return
		}
		local := func(s string) bool {
			s = strings.TrimSuffix(s, "/")
			return !strings.HasPrefix(s, "/") && filepath.IsLocal(s) && !strings.Contains("/"+s+"/", "/../")
		}
		if !local(name) {
			t.Fatalf("entry name %q accepted", name)
		}
		switch typ {
		case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
		case tar.TypeLink:
			if !local(link) {
				t.Fatalf("hard link to %q accepted", link)
			}
		default:
			t.Fatalf("entry type %q accepted", typ)
		}
	})
}
