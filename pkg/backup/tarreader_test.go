package backup_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// readAll reads every entry of a tar stream through backup.TarReader.
func readAll(b []byte) (int, error) {
	tr := backup.NewTarReader(bytes.NewReader(b))
	n := 0
	for {
		_, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// TestTarReader_EveryCutRefused: a tar stream cut anywhere before its end,
// at an entry boundary included (no end-of-archive blocks), and whatever
// the entries hold (zeros at the end of the last one included), is
// refused; the whole stream, with or without record padding, is read
// whole.
func TestTarReader_EveryCutRefused(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		n := rapid.IntRange(0, 6).Draw(rt, "entries")
		for i := range n {
			size := rapid.IntRange(0, 1500).Draw(rt, fmt.Sprintf("size%d", i))
			body := bytes.Repeat([]byte{byte(rapid.IntRange(0, 1).Draw(rt, fmt.Sprintf("byte%d", i)))}, size)
			require.NoError(rt, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d/f%d", i), Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}))
			_, err := tw.Write(body)
			require.NoError(rt, err)
		}
		require.NoError(rt, tw.Close())
		whole := buf.Bytes()
		got, err := readAll(whole)
		require.NoError(rt, err)
		require.Equal(rt, n, got)
		padded := append(append([]byte{}, whole...), make([]byte, rapid.IntRange(0, 20).Draw(rt, "pad")*512)...)
		_, err = readAll(padded)
		require.NoError(rt, err, "record padding")
		for cut := 0; cut < len(whole); cut += 512 {
			_, err := readAll(whole[:cut])
			require.Error(rt, err, "cut at %d of %d read as a whole tar", cut, len(whole))
		}
		cut := rapid.IntRange(0, len(whole)-1).Draw(rt, "cut")
		_, err = readAll(whole[:cut])
		require.Error(rt, err, "cut at %d of %d read as a whole tar", cut, len(whole))
	})
}

// TestVerify_TarCutAtAnEntryBoundary: backup_verify's format check
// refuses a tar (plain or gzip, the compressed stream ended properly)
// that ends between two entries without its end-of-archive blocks, as a
// restore from backups does.
func TestVerify_TarCutAtAnEntryBoundary(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 10 {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d/f%d", i), Mode: 0o644, Size: 700, Typeflag: tar.TypeReg}))
		_, err := tw.Write(bytes.Repeat([]byte("z"), 700))
		require.NoError(t, err)
		if i == 3 {
			require.NoError(t, tw.Flush())
		}
	}
	require.NoError(t, tw.Close())
	whole := buf.Bytes()
	cut := whole[:4*(512+1024)] // four entries: header + 700 bytes padded to 1024
	gz := func(b []byte) []byte {
		var out bytes.Buffer
		w := gzip.NewWriter(&out)
		_, err := w.Write(b)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return out.Bytes()
	}
	for _, c := range []struct {
		format, ext string
		enc         func([]byte) []byte
	}{{"tar", "tar", func(b []byte) []byte { return b }}, {"tar_gz", "tar.gz", gz}} {
		t.Run(c.format, func(t *testing.T) {
			f := fleettest.New(t, false, "acme")
			dir := filepath.Join(f.Root, "backups", "acme")
			require.NoError(t, os.MkdirAll(dir, 0o755))
			path := filepath.Join(dir, "config-1."+c.ext)
			yaml := fleettest.LayoutYAML(f.Root, f.App, false) + "backups:\n  - component: config\n    path: " + f.Root + "/backups/{name}/config-*." + c.ext + "\n    format: " + c.format + "\n"
			l, err := instance.ParseLayout([]byte(yaml), "formats.yml")
			require.NoError(t, err)
			run := func() backup.CheckResult {
				rep, err := backup.Verify(context.Background(), l, backup.Options{Now: time.Now(), Discovery: f.Options()})
				require.NoError(t, err)
				return check(t, rep, "acme", "config", backup.CheckFormat)
			}
			require.NoError(t, os.WriteFile(path, c.enc(whole), 0o644))
			assert.Equal(t, backup.StatusOK, run().Status)
			require.NoError(t, os.WriteFile(path, c.enc(cut), 0o644))
			got := run()
			assert.Equal(t, backup.StatusFailed, got.Status, got.Detail)
			assert.Contains(t, got.Detail, "end-of-archive")
		})
	}
}
