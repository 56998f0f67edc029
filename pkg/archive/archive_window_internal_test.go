package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/mholt/archives"
	"github.com/stretchr/testify/require"
)

// TestArchiveWindow: archives are written with zstd -3's 2 MiB window;
// those of earlier releases (8 MiB) read alike, and a header asking for
// a window above maxArchiveWindow is refused before the reader holds a
// history of twice that.
func TestArchiveWindow(t *testing.T) {
	compressed := func(window int) []byte {
		var buf bytes.Buffer
		zw, err := zstd.NewWriter(&buf, zstd.WithWindowSize(window))
		require.NoError(t, err)
		tw := tar.NewWriter(zw)
		body := bytes.Repeat([]byte("fleetsafe "), 1<<18) // 2.5 MiB: a stream, not one segment
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(body))}))
		_, err = tw.Write(body)
		require.NoError(t, err)
		require.NoError(t, tw.Close())
		require.NoError(t, zw.Close())
		return buf.Bytes()
	}
	read := func(b []byte) error {
		return Codec.Extract(context.Background(), bytes.NewReader(b), func(context.Context, archives.FileInfo) error { return nil })
	}
	var out bytes.Buffer
	one := memEntry("f", bytes.Repeat([]byte("x"), 3<<20), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	require.NoError(t, writeTar(context.Background(), &out, func(yield func(archives.FileInfo) error) error { return yield(one) }))
	var h zstd.Header
	require.NoError(t, h.Decode(out.Bytes()))
	require.Equal(t, uint64(archiveWindow), h.WindowSize, "the window written")
	require.NoError(t, read(out.Bytes()))
	require.NoError(t, read(compressed(8<<20)), "an archive of an earlier release")
	require.NoError(t, read(compressed(maxArchiveWindow)))
	require.Error(t, read(compressed(2*maxArchiveWindow)), "a window above the limit")
}
