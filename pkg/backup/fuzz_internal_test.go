package backup

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// FuzzCheckFile reads arbitrary bytes as each backup format, seeded with
// real tar, tar.gz, tar.zst, zip and pg_dump output: never a panic, a hang
// or an unbounded allocation, and a checksum is only ever "ok" for the
// digest of the bytes read.
func FuzzCheckFile(f *testing.F) {
	formats := []string{"tar", "tar_gz", "tar_zst", "zip", "pg_plain", "pg_custom", "any"}
	seeds := map[string]string{"tar": "small.tar", "tar_gz": "small.tar.gz", "tar_zst": "small.tar.zst", "zip": "small.zip",
		"pg_plain": "small.sql", "pg_custom": "../../pgdump/testdata/small.dump", "any": "small.tar.gz"}
	for i, format := range formats {
		data, err := os.ReadFile(filepath.Join("testdata", seeds[format]))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), data)
		f.Add(uint8(i), data[:len(data)*2/3])
	}
	// A gzip-compressed plain dump, as pg_plain and as any, whole and cut.
	plain, err := os.ReadFile(filepath.Join("testdata", "small.sql"))
	if err != nil {
		f.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	for _, i := range []uint8{4, 6} {
		f.Add(i, gz.Bytes())
		f.Add(i, gz.Bytes()[:gz.Len()-8])
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		format := formats[int(which)%len(formats)]
		path := filepath.Join(t.TempDir(), "b")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var res fileResult
		var err error
		fleettest.Deadline(t, 10*time.Second, func() { res, err = checkFile(path, format, false) })
		if err != nil {
			t.Fatalf("a read error on a readable file: %v", err)
		}
		if res.format == nil && len(data) == 0 && res.checked {
			t.Fatalf("empty %s accepted", format)
		}
		// A gzip stream cut before its trailer never passes.
		if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) && (format == "pg_plain" || format == "any") && res.format == nil {
			if _, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
				zr, _ := gzip.NewReader(bytes.NewReader(data))
				if _, err := io.Copy(io.Discard, zr); err != nil {
					t.Fatalf("a broken gzip stream passed as %s: %v", format, err)
				}
			}
		}
	})
}

// FuzzSidecar: a sidecar is accepted only as one line "<64 hex>  <name>".
func FuzzSidecar(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  b.dump\n"))
	f.Add([]byte("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef *b.dump\n"))
	f.Add([]byte("not a checksum\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "b.dump")
		if err := os.WriteFile(path+".sha256", data, 0o600); err != nil {
			t.Fatal(err)
		}
		digest, err := ReadSidecar(path)
		if err != nil {
			return
		}
		if len(digest) != 64 || !bytes.Contains(bytes.ToLower(data), []byte(digest)) {
			t.Fatalf("accepted %q as %q", data, digest)
		}
	})
}

func FuzzPlainDump(f *testing.F) {
	data, err := os.ReadFile("testdata/small.sql")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(append(bytes.Clone(data), []byte("\\unrestrict abc\n")...))
	f.Add(data[:len(data)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := checkPlainDump(bytes.NewReader(data)); err == nil && !bytes.Contains(data, []byte(plainDumpMarker)) {
			t.Fatalf("accepted a plain dump without its marker")
		}
	})
}
