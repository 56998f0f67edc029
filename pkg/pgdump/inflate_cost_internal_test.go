package pgdump

import (
	"bufio"
	"bytes"
	stdzlib "compress/zlib"
	"hash/adler32"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump/inflate"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zlib"
	"golang.org/x/sys/unix"
)

// TestInflateCost measures, on one CPU, what inflating the data streams
// of a real dump costs with each way of feeding the inflater (the figures
// of bench/README.md). It needs FLEETSAFE_PGCUSTOM_DUMP, a pg_dump -Fc
// file with gzip compression (go run ./bench/pgcustom -dir D -reuse leaves
// D/bench-8.dump); it times thread CPU, not wall, so that other jobs on
// the machine do not count. FLEETSAFE_INFLATE_COST_ONLY=S measures only
// the lines whose name holds S.
func TestInflateCost(t *testing.T) {
	file := os.Getenv("FLEETSAFE_PGCUSTOM_DUMP")
	if file == "" {
		t.Skip("FLEETSAFE_PGCUSTOM_DUMP not set")
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	at := readerAtOf(f)
	r := at.reader()
	_, comp, entries, err := r.headerAndTOC()
	if err != nil || comp != "gzip" {
		t.Fatalf("%v, compression %s", err, comp)
	}
	// The streams' ranges, and each stream de-chunked in memory.
	var streams []*stream
	var flat [][]byte
	var total int64
	for {
		start := r.pos
		typ, err := r.r.ReadByte()
		if err == io.EOF {
			break
		}
		r.pos++
		id, err := r.int()
		if err != nil || typ != blkData || entries[id] == nil {
			t.Fatalf("block at %d: type %d, entry %d: %v", start, typ, id, err)
		}
		s := &stream{start: r.pos, byPos: true, entry: entries[id]}
		c := &chunks{r: r}
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		s.end = r.pos
		streams = append(streams, s)
		flat = append(flat, b)
		total += int64(len(b))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := func() time.Duration {
		var ru unix.Rusage
		unix.Getrusage(unix.RUSAGE_THREAD, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	only := os.Getenv("FLEETSAFE_INFLATE_COST_ONLY") // measure only the lines naming it
	measure := func(name string, run func() int64) {
		if !strings.Contains(name, only) {
			return
		}
		best := time.Duration(1 << 62)
		var n int64
		for range 3 {
			t0 := cpu()
			n = run()
			best = min(best, cpu()-t0)
		}
		t.Logf("%-62s %7.3f s CPU  %5.2f ns/compressed byte  (%d bytes out)", name, best.Seconds(), float64(best)/float64(total), n)
	}
	for _, old := range []bool{true, false} {
		inf := &inflater{comp: "gzip", at: at, intSize: r.intSize, klauspost: old}
		name := "Verify's feed: file -> chunks -> inflate.Checker"
		if old {
			name = "Verify's feed before: file -> chunks -> bufio -> klauspost zlib"
		}
		measure(name, func() int64 {
			var n int64
			for _, s := range streams {
				res := inf.runAt(s)
				if res.err != nil {
					t.Fatal(res.err)
				}
				n += res.n
			}
			return n
		})
	}
	var zr io.ReadCloser
	measure("in memory: *bytes.Reader -> klauspost zlib", func() int64 {
		var n int64
		for _, b := range flat {
			if zr == nil {
				zr, _ = zlib.NewReader(bytes.NewReader(b))
			} else {
				zr.(zlib.Resetter).Reset(bytes.NewReader(b), nil)
			}
			k, err := io.Copy(io.Discard, zr)
			if err != nil {
				t.Fatal(err)
			}
			n += k
		}
		return n
	})
	br := bufio.NewReaderSize(nil, 256<<10)
	measure("in memory: *bufio.Reader -> klauspost zlib", func() int64 {
		var n int64
		for _, b := range flat {
			br.Reset(bytes.NewReader(b))
			if zr == nil {
				zr, _ = zlib.NewReader(br)
			} else {
				zr.(zlib.Resetter).Reset(br, nil)
			}
			k, err := io.Copy(io.Discard, zr)
			if err != nil {
				t.Fatal(err)
			}
			n += k
		}
		return n
	})
	var fr io.ReadCloser
	measure("in memory: *bytes.Reader -> klauspost flate, no adler32", func() int64 {
		var n int64
		for _, b := range flat {
			src := bytes.NewReader(b[2:])
			if fr == nil {
				fr = flate.NewReader(src)
			} else {
				fr.(flate.Resetter).Reset(src, nil)
			}
			k, err := io.Copy(io.Discard, fr)
			if err != nil {
				t.Fatal(err)
			}
			n += k
		}
		return n
	})
	// The checker of pkg/pgdump/inflate, held to klauspost's length and
	// adler32 on every stream of the dump first.
	ck := inflate.New()
	for i, b := range flat {
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		h := adler32.New()
		want, err := io.Copy(h, zr)
		if err != nil {
			t.Fatal(err)
		}
		h2 := adler32.New()
		got, err := ck.Check(bytes.NewReader(b), h2)
		if err != nil || got != want || h.Sum32() != h2.Sum32() {
			t.Fatalf("stream %d: inflate.Checker %d bytes, adler32 %08x, %v; klauspost %d bytes, %08x", i, got, h2.Sum32(), err, want, h.Sum32())
		}
	}
	measure("in memory: *bytes.Reader -> inflate.Checker (zlib, adler32)", func() int64 {
		var n int64
		for _, b := range flat {
			k, err := ck.Check(bytes.NewReader(b), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			n += k
		}
		return n
	})
	var adler time.Duration
	for _, b := range flat {
		if !strings.Contains("hash/adler32", only) {
			break
		}
		zr, err := zlib.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		t0 := cpu()
		adler32.Checksum(out)
		adler += cpu() - t0
	}
	if strings.Contains("hash/adler32", only) {
		t.Logf("%-62s %7.3f s CPU  %5.2f ns/compressed byte", "hash/adler32 alone, over the inflated data", adler.Seconds(), float64(adler)/float64(total))
	}
	measure("in memory: compress/zlib (standard library)", func() int64 {
		var n int64
		for _, b := range flat {
			zs, err := stdzlib.NewReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			k, err := io.Copy(io.Discard, zs)
			if err != nil {
				t.Fatal(err)
			}
			n += k
		}
		return n
	})
}
