package pgdump_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/klauspost/compress/zlib"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// dumpWriter writes pg_dump's custom format, archive version 1.14 (pg_dump
// 15), offsets not set (as a piped dump).
type dumpWriter struct{ bytes.Buffer }

func (w *dumpWriter) int(v int64) {
	sign := byte(0)
	if v < 0 {
		sign, v = 1, -v
	}
	w.WriteByte(sign)
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(v))
	w.Write(b[:])
}

func (w *dumpWriter) str(s string) { w.int(int64(len(s))); w.WriteString(s) }

type genStream struct {
	data   []byte
	chunks []int // chunk sizes of the compressed stream
}

type genEntry struct {
	id      int64
	blobs   bool
	streams []genStream // one for table data, any number for blobs
}

// genDump draws a valid dump: entries with table data or large objects,
// each stream of random, partly compressible bytes, zlib-compressed or not,
// cut into chunks of random sizes.
func genDump(t *rapid.T) []byte {
	compressed := rapid.Bool().Draw(t, "gzip")
	n := rapid.IntRange(0, 6).Draw(t, "entries")
	var entries []genEntry
	for i := range n {
		e := genEntry{id: int64(100 + i), blobs: rapid.IntRange(0, 4).Draw(t, "kind") == 0}
		ns := 1
		if e.blobs {
			ns = rapid.IntRange(0, 3).Draw(t, "blobs")
		}
		for range ns {
			size := rapid.IntRange(0, 40_000).Draw(t, "size")
			seed := rapid.Uint64().Draw(t, "seed")
			data := make([]byte, size)
			for j := range data {
				seed = seed*6364136223846793005 + 1442695040888963407
				data[j] = "abcdefgh"[seed>>61] // compressible, not trivially
				if seed>>58&7 == 0 {
					data[j] = byte(seed >> 40)
				}
			}
			payload := data
			if compressed {
				var z bytes.Buffer
				zw := zlib.NewWriter(&z)
				zw.Write(data)
				zw.Close()
				payload = z.Bytes()
			}
			var chunks []int
			for left := len(payload); left > 0; {
				c := min(left, rapid.IntRange(1, 9000).Draw(t, "chunk"))
				chunks = append(chunks, c)
				left -= c
			}
			e.streams = append(e.streams, genStream{data: payload, chunks: chunks})
		}
		entries = append(entries, e)
	}
	return writeDump(entries, compressed)
}

// writeDump writes a dump of entries, their streams as given.
func writeDump(entries []genEntry, compressed bool) []byte {
	w := &dumpWriter{}
	w.WriteString("PGDMP")
	w.Write([]byte{1, 14, 0, 4, 8, 1})
	if compressed {
		w.int(-1)
	} else {
		w.int(0)
	}
	for _, v := range []int64{1, 2, 3, 4, 5, 126, 0} {
		w.int(v)
	}
	w.str("acme")
	w.str("15.18")
	w.str("15.18")
	w.int(int64(len(entries)))
	for _, e := range entries {
		w.int(e.id)
		w.int(1) // had dumper
		desc := "TABLE DATA"
		if e.blobs {
			desc = "BLOBS"
		}
		for _, s := range []string{"0", "0", "t" + string(rune('a'+e.id%26)), desc} {
			w.str(s)
		}
		w.int(4) // section
		for range 6 {
			w.str("")
		}
		w.str("root")
		w.str("false")
		w.int(-1)      // no dependencies
		w.WriteByte(1) // offset not set
		w.Write(make([]byte, 8))
	}
	writeStream := func(s genStream) {
		off := 0
		for _, c := range s.chunks {
			w.int(int64(c))
			w.Write(s.data[off : off+c])
			off += c
		}
		w.int(0)
	}
	for _, e := range entries {
		if e.blobs {
			w.WriteByte(3)
			w.int(e.id)
			for i, s := range e.streams {
				w.int(int64(5000 + i))
				writeStream(s)
			}
			w.int(0)
			continue
		}
		w.WriteByte(1)
		w.int(e.id)
		writeStream(e.streams[0])
	}
	return w.Bytes()
}

// corrupt flips one byte, cuts the dump at a random offset, or swaps two
// spans of equal length (moving data across blocks, chunk headers and the
// table of contents).
func corrupt(t *rapid.T, data []byte) []byte {
	if len(data) == 0 {
		return data
	}
	out := bytes.Clone(data)
	switch rapid.IntRange(0, 2).Draw(t, "how") {
	case 0:
		i := rapid.IntRange(0, len(out)-1).Draw(t, "byte")
		out[i] ^= byte(rapid.IntRange(1, 255).Draw(t, "xor"))
	case 1:
		out = out[:rapid.IntRange(0, len(out)-1).Draw(t, "cut")]
	case 2:
		a := rapid.IntRange(0, len(out)-1).Draw(t, "a")
		b := rapid.IntRange(0, len(out)-1).Draw(t, "b")
		n := rapid.IntRange(1, 20_000).Draw(t, "span")
		if a > b {
			a, b = b, a
		}
		n = min(n, b-a, len(out)-b)
		tmp := bytes.Clone(out[a : a+n])
		copy(out[a:a+n], out[b:b+n])
		copy(out[b:b+n], tmp)
	}
	return out
}

// agree checks that the parallel checker, reading the dump as a stream
// and by position (from its start and from an offset, as a file opened and
// positioned by its caller), and the sequential reference give the same
// verdict: all accept with the same summary, or all refuse, with a
// *StructureError from one exactly when the other gives one. The two
// parallel paths give exactly the same error, byte offsets included.
func agree(t *rapid.T, data []byte, workers int) {
	want, werr := pgdump.VerifySequential(bytes.NewReader(data))
	got, gerr := pgdump.VerifyParallel(streamOnly(data), workers)
	agreeWith(t, "parallel, streaming", want, werr, got, gerr)
	pos, perr := pgdump.VerifyParallel(bytes.NewReader(data), workers)
	agreeWith(t, "parallel, by position", want, werr, pos, perr)
	if (gerr == nil) != (perr == nil) || gerr != nil && gerr.Error() != perr.Error() {
		t.Fatalf("streaming: %v\nby position: %v", gerr, perr)
	}
	if gerr == nil && !reflect.DeepEqual(got, pos) {
		t.Fatalf("summaries differ: streaming %+v, by position %+v", got, pos)
	}
	prefix := rapid.IntRange(0, 300).Draw(t, "prefix")
	src := bytes.NewReader(append(make([]byte, prefix), data...))
	if _, err := src.Seek(int64(prefix), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	off, oerr := pgdump.VerifyParallel(src, workers)
	if (oerr == nil) != (perr == nil) || oerr != nil && oerr.Error() != perr.Error() {
		t.Fatalf("by position from byte 0: %v\nfrom byte %d: %v", perr, prefix, oerr)
	}
	if oerr == nil && !reflect.DeepEqual(off, pos) {
		t.Fatalf("summaries differ: from byte 0 %+v, from byte %d %+v", pos, prefix, off)
	}
}

// streamOnly reads data as a pipe or an object's body would: no ReadAt,
// no Seek.
func streamOnly(data []byte) io.Reader { return struct{ io.Reader }{bytes.NewReader(data)} }

func agreeWith(t *rapid.T, name string, want *pgdump.Summary, werr error, got *pgdump.Summary, gerr error) {
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("sequential: %v; %s: %v", werr, name, gerr)
	}
	if werr == nil {
		w, g := *want, *got
		w.Rows, g.Rows = nil, nil // counted by the parallel checker only
		if !reflect.DeepEqual(w, g) {
			t.Fatalf("summaries differ: sequential %+v, %s %+v", want, name, got)
		}
		return
	}
	var ws, gs *pgdump.StructureError
	if errors.As(werr, &ws) != errors.As(gerr, &gs) {
		t.Fatalf("error types differ: sequential %v; %s %v", werr, name, gerr)
	}
	// The same finding, in the same entry: only the byte offset of an
	// inflate error may differ (the sequential reader's read-ahead), and
	// the decoder's own words (the sequential reader inflates with
	// klauspost/compress, the parallel checker with pkg/pgdump/inflate,
	// held to the same verdicts by that package's tests).
	norm := func(err error) string {
		return inflateWhy.ReplaceAllString(atByte.ReplaceAllString(err.Error(), "at byte N"), "$1")
	}
	if w, g := norm(werr), norm(gerr); w != g {
		t.Fatalf("errors differ:\nsequential %v\n%s %v", werr, name, gerr)
	}
}

var (
	atByte     = regexp.MustCompile(`at byte \d+`)
	inflateWhy = regexp.MustCompile(`(data does not decompress \(corrupted\)): .*`)
)

// TestVerifyParallel_AgreesWithSequential: on random valid dumps, and on
// the same dumps with a byte corrupted, cut at a random offset or two spans
// swapped, the parallel checker (with buffers small enough that streams
// are split into segments) says what the sequential reader says.
func TestVerifyParallel_AgreesWithSequential(t *testing.T) {
	defer pgdump.SetSegSize(4096)()
	rapid.Check(t, func(t *rapid.T) {
		data := genDump(t)
		workers := rapid.IntRange(1, 4).Draw(t, "workers")
		got, err := pgdump.VerifyParallel(bytes.NewReader(data), workers)
		if err != nil {
			t.Fatalf("a valid dump refused: %v", err)
		}
		if _, err := pgdump.VerifyParallel(streamOnly(data), workers); err != nil {
			t.Fatalf("a valid dump refused when streamed: %v", err)
		}
		if got.Entries == 0 && len(data) > 200 {
			t.Fatalf("no entries read")
		}
		agree(t, data, workers)
		agree(t, corrupt(t, data), workers)
	})
}

// TestVerifyParallel_RealDumpsCorrupted: the shipped real pg_dump files,
// corrupted at random, get the same verdict from both checkers.
func TestVerifyParallel_RealDumpsCorrupted(t *testing.T) {
	defer pgdump.SetSegSize(1024)()
	var dumps [][]byte
	for _, name := range []string{"testdata/small.dump", "testdata/small-uncompressed.dump"} {
		data, err := os.ReadFile(name)
		require.NoError(t, err)
		dumps = append(dumps, data)
	}
	rapid.Check(t, func(t *rapid.T) {
		data := dumps[rapid.IntRange(0, len(dumps)-1).Draw(t, "dump")]
		agree(t, corrupt(t, data), rapid.IntRange(1, 3).Draw(t, "workers"))
	})
}

// TestVerifyFraming_CatchesWhatVerifyCatchesButInflation: on random
// dumps (streams split into segments and inflated only up to a few
// bytes), VerifyFraming passes every valid dump with table data exactly
// when Verify says there is some, refuses every cut that Verify refuses
// (truncation is in the framing, never left to pg_restore), and never
// refuses what Verify passes.
func TestVerifyFraming_CatchesWhatVerifyCatchesButInflation(t *testing.T) {
	defer pgdump.SetSegSize(4096)()
	rapid.Check(t, func(t *rapid.T) {
		defer pgdump.SetFramingInflate(int64(rapid.IntRange(1, 64).Draw(t, "inflate")))()
		data := genDump(t)
		want, werr := pgdump.Verify(bytes.NewReader(data))
		got, gerr := pgdump.VerifyFraming(bytes.NewReader(data))
		if werr != nil || gerr != nil {
			t.Fatalf("a valid dump refused: Verify %v; VerifyFraming %v", werr, gerr)
		}
		if (want.DataBytes > 0) != (got.DataBytes > 0) {
			t.Fatalf("data: Verify %d bytes, VerifyFraming %d", want.DataBytes, got.DataBytes)
		}
		cut := data[:rapid.IntRange(0, max(len(data)-1, 0)).Draw(t, "cut")]
		_, werr = pgdump.Verify(bytes.NewReader(cut))
		_, gerr = pgdump.VerifyFraming(bytes.NewReader(cut))
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("cut at %d of %d: Verify %v; VerifyFraming %v", len(cut), len(data), werr, gerr)
		}
		if _, serr := pgdump.VerifyFraming(streamOnly(cut)); (serr == nil) != (gerr == nil) || serr != nil && serr.Error() != gerr.Error() {
			t.Fatalf("cut at %d of %d: VerifyFraming by position %v; streaming %v", len(cut), len(data), gerr, serr)
		}
		bad := corrupt(t, data)
		_, werr = pgdump.Verify(bytes.NewReader(bad))
		_, gerr = pgdump.VerifyFraming(bytes.NewReader(bad))
		if werr == nil && gerr != nil {
			t.Fatalf("VerifyFraming refuses what Verify passes: %v", gerr)
		}
		if _, serr := pgdump.VerifyFraming(streamOnly(bad)); (serr == nil) != (gerr == nil) || serr != nil && serr.Error() != gerr.Error() {
			t.Fatalf("corrupted: VerifyFraming by position %v; streaming %v", gerr, serr)
		}
	})
}

// TestVerify_FindingBeforeACutStands: a gzip stream whole up to its
// adler32, which is wrong, and the dump cut right after it (the stream's
// terminator broken). The sequential reader's inflater never reads past
// the trailer and finds the checksum; the parallel checker's zlib
// checker reads ahead into the broken chunk header, but its finding on
// the bytes before the cut stands: every path names the checksum.
func TestVerify_FindingBeforeACutStands(t *testing.T) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	for i := range 3000 {
		fmt.Fprintf(zw, "%d\t%d\tsome row text\n", i, i*7919%1000)
	}
	zw.Close()
	payload := z.Bytes()
	payload[len(payload)-1] ^= 0xff // the adler32
	var chunks []int
	for left := len(payload); left > 0; left -= min(left, 4096) {
		chunks = append(chunks, min(left, 4096))
	}
	data := writeDump([]genEntry{{id: 100, streams: []genStream{{data: payload, chunks: chunks}}}}, true)
	// The terminator, the last 5 bytes: a negative length.
	data[len(data)-5] = 1
	data[len(data)-4] = 7
	_, werr := pgdump.VerifySequential(bytes.NewReader(data))
	if werr == nil || !strings.Contains(werr.Error(), "does not decompress") {
		t.Fatalf("sequential: %v; want the checksum", werr)
	}
	for name, src := range map[string]func() io.Reader{
		"streaming":   func() io.Reader { return streamOnly(data) },
		"by position": func() io.Reader { return bytes.NewReader(data) },
	} {
		for _, workers := range []int{1, 2} {
			_, err := pgdump.VerifyParallel(src(), workers)
			if err == nil || !strings.Contains(err.Error(), "does not decompress") {
				t.Errorf("%s, %d workers: %v; want the checksum, as the sequential reader: %v", name, workers, err, werr)
			}
		}
	}
}

// TestVerify_MissingBlockNamedTheSameEveryTime: a dump cut before its data
// blocks misses several; every reader names the same one (the lowest
// entry id), whatever the order of a map.
func TestVerify_MissingBlockNamedTheSameEveryTime(t *testing.T) {
	var entries []genEntry
	for i := range 6 {
		entries = append(entries, genEntry{id: int64(100 + i), streams: []genStream{{data: []byte("row\n"), chunks: []int{4}}}})
	}
	data := writeDump(entries, false)
	cut := bytes.Index(data, []byte{1, 0, 100, 0, 0, 0}) // entry 100's data block
	if cut < 0 {
		t.Fatal("no data block for entry 100 in the dump")
	}
	data = data[:cut]
	for range 20 {
		_, serr := pgdump.VerifySequential(bytes.NewReader(data))
		_, perr := pgdump.VerifyParallel(bytes.NewReader(data), 2)
		for _, err := range []error{serr, perr} {
			if err == nil || !strings.Contains(err.Error(), "no data block for entry 100 ") {
				t.Fatalf("%v; want entry 100 named", err)
			}
		}
	}
}
