package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
)

// TestCheckFile_PGCustomFileAndFIFOAgree: a pg_custom backup with its
// sidecar, intact or with a byte changed, cut or two spans swapped, gets
// the same findings (format and checksum, message for message) when read
// from a regular file (read by position, the checksum by a second reader
// at the same time) and from a FIFO (read as a stream, the checksum in
// the same read); an intact dump with its right sidecar passes both.
func TestCheckFile_PGCustomFileAndFIFOAgree(t *testing.T) {
	orig, err := os.ReadFile("../pgdump/testdata/small.dump")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "db.dump")
	fifo := filepath.Join(dir, "db.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(orig)
	if err := os.WriteFile(file+sidecar.Suffix, []byte(sidecar.Format(file, hex.EncodeToString(sum[:]))), 0o600); err != nil {
		t.Fatal(err)
	}
	describe := func(r fileResult) string {
		return fmt.Sprintf("checksum %v; format %v; database %q; data %v", r.checksum, r.format, r.database, r.data)
	}
	rapid.Check(t, func(rt *rapid.T) {
		data := bytes.Clone(orig)
		switch rapid.IntRange(0, 3).Draw(rt, "how") {
		case 1:
			i := rapid.IntRange(0, len(data)-1).Draw(rt, "byte")
			data[i] ^= byte(rapid.IntRange(1, 255).Draw(rt, "xor"))
		case 2:
			data = data[:rapid.IntRange(0, len(data)-1).Draw(rt, "cut")]
		case 3:
			a := rapid.IntRange(0, len(data)/2-1).Draw(rt, "a")
			b := rapid.IntRange(len(data)/2, len(data)-1).Draw(rt, "b")
			n := min(rapid.IntRange(1, 500).Draw(rt, "span"), b-a, len(data)-b)
			tmp := bytes.Clone(data[a : a+n])
			copy(data[a:a+n], data[b:b+n])
			copy(data[b:b+n], tmp)
		}
		if err := os.WriteFile(file, data, 0o600); err != nil {
			rt.Fatal(err)
		}
		fromFile, ferr := checkFileFrom(context.Background(), nil, file, file, FormatPGCustom, true)
		if ferr != nil {
			rt.Fatal(ferr)
		}
		go func() {
			w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				return
			}
			w.Write(data)
			w.Close()
		}()
		fromFIFO, perr := checkFileFrom(context.Background(), nil, file, fifo, FormatPGCustom, true)
		if perr != nil {
			rt.Fatal(perr)
		}
		if a, b := describe(fromFile), describe(fromFIFO); a != b {
			rt.Fatalf("file: %s\nFIFO: %s", a, b)
		}
		intact := bytes.Equal(data, orig)
		if intact != (fromFile.checksum == nil) || intact && fromFile.format != nil {
			rt.Fatalf("intact %v: %s", intact, describe(fromFile))
		}
	})
}
