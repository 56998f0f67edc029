package inflate

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/adler32"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"testing/iotest"

	"pgregory.net/rapid"
)

// verdict is what a decoder says of a stream: whether it is accepted and,
// when it is, the length and adler32 of its output.
type verdict struct {
	ok  bool
	n   int64
	sum uint32
	err error
}

func (v verdict) String() string {
	if v.ok {
		return fmt.Sprintf("accepted, %d bytes, adler32 %08x", v.n, v.sum)
	}
	return fmt.Sprintf("refused: %v", v.err)
}

func (v verdict) same(o verdict) bool {
	return v.ok == o.ok && (!v.ok || v.n == o.n && v.sum == o.sum)
}

// reference decodes with the standard library: compress/zlib, or
// compress/flate for a raw stream.
func reference(data []byte, raw bool) verdict {
	var r io.Reader
	if raw {
		r = flate.NewReader(bytes.NewReader(data))
	} else {
		zr, err := zlib.NewReader(bytes.NewReader(data))
		if err != nil {
			return verdict{err: err}
		}
		r = zr
	}
	h := adler32.New()
	n, err := io.Copy(h, r)
	return verdict{ok: err == nil, n: n, sum: h.Sum32(), err: err}
}

// ours decodes with the Checker, the input given as src makes it.
func ours(c *Checker, src io.Reader, raw bool) verdict {
	c.raw = raw
	h := adler32.New()
	n, err := c.Check(src, h)
	return verdict{ok: err == nil, n: n, sum: h.Sum32(), err: err}
}

// differ checks data as a zlib stream and as a raw deflate stream, read
// at once and a byte at a time, against the standard library.
func differ(t testing.TB, c *Checker, data []byte) {
	t.Helper()
	for _, raw := range []bool{false, true} {
		want := reference(data, raw)
		for _, one := range []bool{false, true} {
			var src io.Reader = bytes.NewReader(data)
			if one {
				src = iotest.OneByteReader(src)
			}
			if got := ours(c, src, raw); !got.same(want) {
				t.Fatalf("raw %v, a byte at a time %v: %d bytes %x…: ours %v, compress/zlib %v", raw, one, len(data), data[:min(len(data), 32)], got, want)
			}
		}
	}
}

// corpus makes streams of every kind of block: compress/zlib at every
// level (stored, fixed and dynamic Huffman blocks, Huffman only), with
// sync flushes (empty stored blocks), data with runs, text, random bytes
// and matches at the largest distance, and the streams pg_dump wrote in
// the test dumps.
func corpus(t testing.TB) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 40000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var rows bytes.Buffer
	for i := range 3000 {
		fmt.Fprintf(&rows, "%d\t%d\t%d\t%s\n", i, rng.IntN(100), rng.IntN(1e6)-5e5, bytes.Repeat([]byte{' '}, rng.IntN(90)))
	}
	// 32768 random bytes, then the same again: matches at distance 32768.
	far := append(append([]byte{}, random[:32768]...), random[:1000]...)
	// Over 600 KiB of rows and noise with far matches: the window slides
	// (every 256 KiB of output) with matches reaching across.
	var big []byte
	for len(big) < 600<<10 {
		big = append(big, rows.Bytes()[:rng.IntN(rows.Len())]...)
		big = append(big, random[:rng.IntN(5000)]...)
		if len(big) > 32768 {
			big = append(big, big[len(big)-32768:len(big)-32768+rng.IntN(300)]...)
		}
	}
	inputs := [][]byte{nil, []byte("a"), bytes.Repeat([]byte("a"), 1000), []byte("hello, hello, hello world"), random[:300], random, rows.Bytes(), far, big}
	var out [][]byte
	for _, in := range inputs {
		for level := -2; level <= 9; level++ {
			var b bytes.Buffer
			zw, err := zlib.NewWriterLevel(&b, level)
			if err != nil {
				t.Fatal(err)
			}
			zw.Write(in[:len(in)/2])
			if level%2 == 0 {
				zw.Flush()
			}
			zw.Write(in[len(in)/2:])
			zw.Close()
			out = append(out, b.Bytes())
		}
	}
	// zlib's empty stream (one empty fixed block), and with a preset
	// dictionary id of 1 (accepted: the empty dictionary's adler32).
	out = append(out, []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	out = append(out, []byte{0x78, 0xbb, 0, 0, 0, 1, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	return append(out, pgDumpStreams(t)...)
}

// pgDumpStreams finds the zlib streams in the test dumps: each chunk
// payload that starts like one (a stream longer than a chunk is cut
// there, which is a truncated stream: a case too).
func pgDumpStreams(t testing.TB) [][]byte {
	data, err := os.ReadFile("../testdata/small.dump")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := 5; i+2 < len(data); i++ {
		if data[i] != 0x78 || data[i-5] != 0 || binary.BigEndian.Uint16(data[i:])%31 != 0 {
			continue
		}
		n := int(binary.LittleEndian.Uint32(data[i-4:]))
		if n < 8 || i+n > len(data) {
			continue
		}
		out = append(out, data[i:i+n])
	}
	if len(out) == 0 {
		t.Fatal("no zlib stream found in testdata/small.dump")
	}
	return out
}

// TestCorpus: every stream of the corpus, then every truncation and every
// single bit flipped of a few, give the standard library's verdict.
func TestCorpus(t *testing.T) {
	c := New()
	streams := corpus(t)
	accepted := 0
	for _, s := range streams {
		differ(t, c, s)
		if reference(s, false).ok {
			accepted++
		}
	}
	if accepted < len(streams)/2 {
		t.Fatalf("only %d of %d corpus streams are whole", accepted, len(streams))
	}
	for _, s := range streams {
		if len(s) > 600 {
			continue
		}
		for i := range len(s) {
			differ(t, c, s[:i])
			for bit := range 8 {
				m := bytes.Clone(s)
				m[i] ^= 1 << bit
				differ(t, c, m)
			}
		}
	}
}

// TestHandMade: streams no compressor writes.
func TestHandMade(t *testing.T) {
	c := New()
	for name, raw := range map[string][]byte{
		"reserved block type":        {0x07},
		"stored length mismatch":     {0x01, 0x01, 0x00, 0x00, 0x00},
		"stored, then nothing":       {0x01, 0x01, 0x00, 0xfe, 0xff},
		"fixed, match before output": {0x03, 0x02},             // length 3 distance 1 with no output
		"fixed, literal then match":  {0x73, 0x04, 0x02, 0x00}, // "a" then length 3 distance 1
		"empty fixed":                {0x03, 0x00},
		"dynamic, all lengths zero":  {0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
	} {
		t.Run(name, func(t *testing.T) {
			differ(t, c, raw)
			z := append([]byte{0x78, 0x9c}, raw...)
			differ(t, c, z)
			differ(t, c, append(z, 0, 0, 0, 1))
		})
	}
}

// FuzzZlib holds the Checker to compress/zlib's verdict on any input, as
// a zlib stream and as a raw deflate stream.
func FuzzZlib(f *testing.F) {
	for _, s := range corpus(f) {
		if len(s) <= 8<<10 {
			f.Add(s)
		}
	}
	c := New()
	f.Fuzz(func(t *testing.T, data []byte) {
		differ(t, c, data)
	})
}

// TestRapid: compressed data of random shape, compressed at a random
// level with random flushes, then left whole, truncated, bit-flipped,
// overwritten or extended, read in random pieces: the Checker's verdict
// is the standard library's.
func TestRapid(t *testing.T) {
	c := New()
	rapid.Check(t, func(t *rapid.T) {
		var data []byte
		for range rapid.IntRange(0, 12).Draw(t, "segments") {
			switch rapid.IntRange(0, 3).Draw(t, "kind") {
			case 0:
				data = append(data, rapid.SliceOfN(rapid.Byte(), 0, 3000).Draw(t, "bytes")...)
			case 1:
				b := rapid.Byte().Draw(t, "run")
				data = append(data, bytes.Repeat([]byte{b}, rapid.IntRange(1, 2000).Draw(t, "runlen"))...)
			case 2:
				if len(data) > 0 {
					d := rapid.IntRange(1, min(len(data), 33000)).Draw(t, "dist")
					n := rapid.IntRange(1, 600).Draw(t, "len")
					for range n {
						data = append(data, data[len(data)-d])
					}
				}
			case 3:
				rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 0))
				for range rapid.IntRange(0, 40000).Draw(t, "noise") {
					data = append(data, byte(rng.Uint32()))
				}
			}
		}
		level := rapid.IntRange(-2, 9).Draw(t, "level")
		var b bytes.Buffer
		zw, err := zlib.NewWriterLevel(&b, level)
		if err != nil {
			t.Fatal(err)
		}
		rest := data
		for len(rest) > 0 {
			k := rapid.IntRange(0, len(rest)).Draw(t, "piece")
			zw.Write(rest[:k])
			rest = rest[k:]
			if rapid.Bool().Draw(t, "flush") {
				zw.Flush()
			}
		}
		zw.Close()
		s := bytes.Clone(b.Bytes())
		switch rapid.IntRange(0, 4).Draw(t, "mutation") {
		case 1:
			s = s[:rapid.IntRange(0, len(s)).Draw(t, "cut")]
		case 2:
			i := rapid.IntRange(0, len(s)-1).Draw(t, "at")
			s[i] ^= 1 << rapid.IntRange(0, 7).Draw(t, "bit")
		case 3:
			i := rapid.IntRange(0, len(s)-1).Draw(t, "at")
			s[i] = rapid.Byte().Draw(t, "value")
		case 4:
			s = append(s, rapid.SliceOfN(rapid.Byte(), 1, 20).Draw(t, "trailing")...)
		}
		want := reference(s, false)
		if len(s) == b.Len() && bytes.Equal(s, b.Bytes()) && (!want.ok || want.n != int64(len(data))) {
			t.Fatalf("compress/zlib refuses its own stream: %v", want)
		}
		piece := rapid.IntRange(1, 100000).Draw(t, "read size")
		got := ours(c, &pieces{r: bytes.NewReader(s), n: piece}, false)
		if !got.same(want) {
			t.Fatalf("%d bytes: ours %v, compress/zlib %v", len(s), got, want)
		}
	})
}

// pieces reads at most n bytes at a time.
type pieces struct {
	r io.Reader
	n int
}

func (p *pieces) Read(b []byte) (int, error) { return p.r.Read(b[:min(len(b), p.n)]) }

// TestWriterError: the writer's error stops the check and is returned,
// after the output decoded so far was handed over.
func TestWriterError(t *testing.T) {
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	zw.Write(bytes.Repeat([]byte("0123456789"), 100000))
	zw.Close()
	stop := fmt.Errorf("enough")
	w := &stopAfter{n: 100000, err: stop}
	n, err := New().Check(bytes.NewReader(b.Bytes()), w)
	if err != stop || n < 100000 || n >= 1000000 {
		t.Fatalf("got %d bytes, %v; want the writer's error after 100000 bytes or more", n, err)
	}
}

type stopAfter struct {
	n   int
	err error
}

func (s *stopAfter) Write(p []byte) (int, error) {
	s.n -= len(p)
	if s.n <= 0 {
		return len(p), s.err
	}
	return len(p), nil
}

// TestAdler32: the word-at-a-time adler32 is hash/adler32's, over any
// length, from any running sum.
func TestAdler32(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var p []byte
		if rapid.Bool().Draw(t, "high") {
			p = bytes.Repeat([]byte{0xff}, rapid.IntRange(0, 30000).Draw(t, "n"))
		} else {
			p = rapid.SliceOfN(rapid.Byte(), 0, 30000).Draw(t, "p")
		}
		k := rapid.IntRange(0, len(p)).Draw(t, "split")
		got := adler32Update(adler32Update(1, p[:k]), p[k:])
		if want := adler32.Checksum(p); got != want {
			t.Fatalf("%d bytes split at %d: %08x, hash/adler32 %08x", len(p), k, got, want)
		}
	})
}
