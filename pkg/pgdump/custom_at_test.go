package pgdump_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zlib"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// largeDump writes a dump of n table data streams, each of size bytes of
// text stored in zlib's stored blocks (cheap to make and to inflate, even
// under the race detector), in chunks of 4 KiB as pg_dump writes them;
// the streams are far larger than the streaming checker's buffers.
func largeDump(t *testing.T, n, size int) string {
	t.Helper()
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.NoCompression)
	require.NoError(t, err)
	line := []byte("4711\t12\t-5000\tabcdefabcdefabcdefabcdefabcdefab\n")
	_, err = zw.Write(bytes.Repeat(line, size/len(line)+1))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	streams := make([][]byte, n)
	for i := range streams {
		streams[i] = z.Bytes()
	}
	w := &dumpWriter{}
	w.WriteString("PGDMP")
	w.Write([]byte{1, 14, 0, 4, 8, 1})
	w.int(-1) // gzip
	for _, v := range []int64{1, 2, 3, 4, 5, 126, 0} {
		w.int(v)
	}
	w.str("acme")
	w.str("15.18")
	w.str("15.18")
	w.int(int64(n))
	for i := range n {
		w.int(int64(100 + i))
		w.int(1)
		for _, s := range []string{"0", "0", "t" + string(rune('a'+i)), "TABLE DATA"} {
			w.str(s)
		}
		w.int(4)
		for range 6 {
			w.str("")
		}
		w.str("root")
		w.str("false")
		w.int(-1)
		w.WriteByte(1)
		w.Write(make([]byte, 8))
	}
	for i, s := range streams {
		w.WriteByte(1)
		w.int(int64(100 + i))
		for off := 0; off < len(s); off += 4096 {
			c := s[off:min(off+4096, len(s))]
			w.int(int64(len(c)))
			w.Write(c)
		}
		w.int(0)
	}
	file := filepath.Join(t.TempDir(), "large.dump")
	require.NoError(t, os.WriteFile(file, w.Bytes(), 0o600))
	return file
}

// TestVerify_ByPositionInflatesLargeStreamsAtOnce: a file whose streams
// are each larger than all the streaming checker's buffers together has
// its streams inflated at the same time, one per inflater (each inflater
// waits, as it starts a stream, until the other one has started too: read
// in order, the second stream would only start once the first is nearly
// inflated, and the wait would time out).
func TestVerify_ByPositionInflatesLargeStreamsAtOnce(t *testing.T) {
	file := largeDump(t, 2, 8<<20)
	var mu sync.Mutex
	started := 0
	all := make(chan struct{})
	defer pgdump.SetAtStarted(func() {
		mu.Lock()
		started++
		if started == 2 {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(5 * time.Second):
			t.Error("a stream started alone: the other did not start within 5 s")
		}
	})()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	sum, err := pgdump.VerifyParallel(f, 2)
	require.NoError(t, err)
	require.Equal(t, 2, sum.DataBlocks)
	require.Equal(t, 2, started)
	pos, err := f.Seek(0, io.SeekCurrent)
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	require.Equal(t, fi.Size(), pos, "the file is left at its end, as when read as a stream")
}

// TestVerify_ByPositionMemoryFlat: checking a 48 MiB dump file of four
// large streams allocates a bounded amount (the inflaters' buffers and
// decompressors), far less than one stream, and no more than for a dump
// twelve times smaller.
func TestVerify_ByPositionMemoryFlat(t *testing.T) {
	allocated := func(file string) (uint64, int64) {
		f, err := os.Open(file)
		require.NoError(t, err)
		defer f.Close()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		sum, err := pgdump.VerifyParallel(f, 2)
		runtime.ReadMemStats(&after)
		require.NoError(t, err)
		return after.TotalAlloc - before.TotalAlloc, sum.DataBytes
	}
	small, smallData := allocated(largeDump(t, 4, 1<<20))
	large, largeData := allocated(largeDump(t, 4, 12<<20))
	t.Logf("allocated %d KiB for %d MiB of data, %d KiB for %d MiB", small>>10, smallData>>20, large>>10, largeData>>20)
	require.Less(t, large, uint64(3<<20), "allocated bytes must not grow with the streams")
	require.Less(t, large, small+small/2+(256<<10), "allocated bytes must not grow with the streams")
}

// TestVerify_FileAndPipeAgree: the shipped real dumps, corrupted at
// random (a byte flipped, cut, spans swapped), get the same verdict,
// error for error, when checked from a file (read by position) and from a
// pipe (read as a stream).
func TestVerify_FileAndPipeAgree(t *testing.T) {
	var dumps [][]byte
	for _, name := range []string{"testdata/small.dump", "testdata/small-uncompressed.dump"} {
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		dumps = append(dumps, data)
	}
	dir := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		data := corrupt(rt, dumps[rapid.IntRange(0, len(dumps)-1).Draw(rt, "dump")])
		file := filepath.Join(dir, "d.dump")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			rt.Fatal(err)
		}
		f, err := os.Open(file)
		if err != nil {
			rt.Fatal(err)
		}
		defer f.Close()
		fsum, ferr := pgdump.Verify(f)

		pr, pw, err := os.Pipe()
		if err != nil {
			rt.Fatal(err)
		}
		go func() {
			pw.Write(data)
			pw.Close()
		}()
		psum, perr := pgdump.Verify(pr)
		io.Copy(io.Discard, pr) // let the writer finish after an early refusal
		pr.Close()
		if (ferr == nil) != (perr == nil) || ferr != nil && ferr.Error() != perr.Error() {
			rt.Fatalf("file: %v\npipe: %v", ferr, perr)
		}
		if ferr == nil && (fsum.DataBytes != psum.DataBytes || fsum.DataBlocks != psum.DataBlocks) {
			rt.Fatalf("file: %+v\npipe: %+v", fsum, psum)
		}
	})
}
