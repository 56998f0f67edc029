// Package inflate checks zlib streams (RFC 1950, RFC 1951): it decodes a
// stream to its end, verifies its adler32, and hands the inflated bytes to
// a writer that only looks at them (the pg_custom check counts lines), so
// that no output is kept beyond the 32 KiB window deflate refers back to.
//
// It accepts exactly the streams compress/zlib accepts and refuses those
// it refuses (the differential fuzz and property tests hold it to that),
// and is written for speed in the manner of libdeflate: a 64-bit bit
// buffer refilled a word at a time, one table lookup per symbol with the
// extra bits' count folded into the entry, a loop that checks the room
// left in its buffers once per symbol, and matches copied a word at a
// time when they do not overlap within a word.
package inflate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors, as compress/zlib names them.
var (
	ErrHeader     = errors.New("zlib: invalid header")
	ErrDictionary = errors.New("zlib: invalid dictionary")
	ErrChecksum   = errors.New("zlib: invalid checksum")
)

// CorruptError is a deflate stream that does not decode, near Offset
// bytes into the stream.
type CorruptError struct {
	Offset int64
	Why    string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("flate: corrupt input before offset %d (%s)", e.Offset, e.Why)
}

const (
	window  = 1 << 15
	outRun  = 256 << 10 // output decoded between two hand-overs to the writer
	outSize = window + outRun + 512
	// outLimit: the loop hands the output over and slides the window once
	// past it; a symbol writes at most 258 bytes, plus 7 of a word copy.
	outLimit = window + outRun
	inSize   = 64 << 10
	keepBack = 8 // input bytes kept behind the position: the bit buffer's
)

// Checker decodes zlib streams one after another, reusing its buffers
// (about 360 KiB). It is not safe for concurrent use.
type Checker struct {
	src      io.Reader
	w        io.Writer
	in       []byte // in[:len(in)] read from src
	ip       int    // next byte of in to load into the bit buffer
	eof      bool   // src is exhausted, or failed
	srcErr   error  // src's error, returned once its missing bytes are needed
	bitbuf   uint64 // bits not consumed yet, least significant first
	nbits    uint   // valid bits in bitbuf (bits above may repeat in[ip]'s)
	overrun  uint   // zero bytes loaded past the end of src
	consumed int64  // bytes of src before in[0]

	out     []byte
	op      int   // next byte of out to write
	flushed int   // out[:flushed] was handed to the writer
	total   int64 // bytes handed to the writer
	sum     uint32

	raw bool // a raw deflate stream, no zlib header and trailer (tests)

	lit  [litEnough]uint32
	dist [distEnough]uint32
	pre  [1 << preBits]uint32
	lens [maxNumLit + maxNumDist]uint8
}

// New returns a Checker.
func New() *Checker {
	return &Checker{in: make([]byte, 0, inSize), out: make([]byte, outSize)}
}

// Check decodes the zlib stream read from src and verifies its adler32,
// handing the inflated bytes to w as they come (w must not keep them). It
// returns the number of bytes handed to w, and nil when the stream is
// whole and sound. Bytes after the stream's end are not read, or read and
// ignored, as compress/zlib does. An error of w or src is returned as is;
// the output decoded before a stream error is handed to w first.
func (c *Checker) Check(src io.Reader, w io.Writer) (int64, error) {
	c.src, c.w = src, w
	c.in, c.ip, c.eof, c.srcErr, c.consumed = c.in[:0], 0, false, nil, 0
	c.bitbuf, c.nbits, c.overrun = 0, 0, 0
	c.op, c.flushed, c.total, c.sum = 0, 0, 0, 1
	err := c.run()
	if _, ok := err.(*CorruptError); ok && c.nbits < 8*c.overrun {
		// Found past the end of the input: the input is short.
		err = c.truncated()
	}
	if err != nil {
		if ferr := c.flush(); ferr != nil {
			err = ferr
		}
	}
	c.src, c.w = nil, nil
	return c.total, err
}

func (c *Checker) run() error {
	if !c.raw {
		h, err := c.bytes(2)
		if err != nil {
			return err
		}
		if h[0]&0x0f != 8 || h[0]>>4 > 7 || binary.BigEndian.Uint16(h)%31 != 0 {
			return ErrHeader
		}
		if h[1]&0x20 != 0 {
			// A preset dictionary: compress/zlib, given none, accepts the
			// empty one, whose adler32 is 1.
			d, err := c.bytes(4)
			if err != nil {
				return err
			}
			if binary.BigEndian.Uint32(d) != 1 {
				return ErrDictionary
			}
		}
	}
	for {
		if err := c.refill(); err != nil {
			return err
		}
		final := c.bitbuf&1 != 0
		typ := (c.bitbuf >> 1) & 3
		c.bitbuf >>= 3
		c.nbits -= 3
		var err error
		switch typ {
		case 0:
			err = c.stored()
		case 1:
			err = c.huffman(&fixedLit, &fixedDist)
		case 2:
			if err = c.dynamic(); err == nil {
				err = c.huffman(&c.lit, &c.dist)
			}
		default:
			err = c.corrupt("reserved block type")
		}
		if err != nil {
			return err
		}
		if final {
			break
		}
	}
	if err := c.align(); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	if c.raw {
		return nil
	}
	t, err := c.bytes(4)
	if err != nil {
		return err
	}
	if binary.BigEndian.Uint32(t) != c.sum {
		return ErrChecksum
	}
	return nil
}

// truncated is the error of a stream cut short: src's, or
// io.ErrUnexpectedEOF.
func (c *Checker) truncated() error {
	if c.srcErr != nil {
		return c.srcErr
	}
	return io.ErrUnexpectedEOF
}

func (c *Checker) corrupt(why string) error {
	return &CorruptError{Offset: c.consumed + int64(c.ip), Why: why}
}

// fill reads more of src into in, keeping the keepBack bytes before ip
// (the bit buffer may give them back).
func (c *Checker) fill() error {
	if keep := c.ip - keepBack; keep > 0 {
		n := copy(c.in[:cap(c.in)], c.in[keep:])
		c.in = c.in[:n]
		c.ip -= keep
		c.consumed += int64(keep)
	}
	for range 100 {
		n, err := c.src.Read(c.in[len(c.in):cap(c.in)])
		c.in = c.in[:len(c.in)+n]
		if err != nil {
			// An error of src is returned only once the bytes it did not
			// give are needed, as compress/zlib does: a corruption
			// before it comes first.
			c.eof = true
			if err != io.EOF {
				c.srcErr = err
			}
			return nil
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

// refill loads the bit buffer to at least 56 bits, past the end of src
// with zero bytes (overrun counts them); consuming one of those bits is a
// truncation, found at the end of the stream or here, once a whole word of
// them was loaded.
func (c *Checker) refill() error {
	if c.ip+8 <= len(c.in) {
		c.bitbuf |= binary.LittleEndian.Uint64(c.in[c.ip:]) << (c.nbits & 63)
		c.ip += int((63 - c.nbits) >> 3)
		c.nbits |= 56
		return nil
	}
	for c.nbits < 56 {
		if c.ip < len(c.in) {
			c.bitbuf |= uint64(c.in[c.ip]) << (c.nbits & 63)
			c.ip++
			c.nbits += 8
			continue
		}
		if !c.eof {
			if err := c.fill(); err != nil {
				return err
			}
			continue
		}
		if c.overrun >= 8 {
			return c.truncated()
		}
		c.overrun++
		c.nbits += 8
	}
	return nil
}

// align drops the bits up to a byte boundary and gives the whole bytes
// left in the bit buffer back to the input; an error if some of the bits
// consumed were past the end of src.
func (c *Checker) align() error {
	if c.nbits < 8*c.overrun {
		return c.truncated()
	}
	c.ip -= int(c.nbits>>3 - c.overrun)
	c.bitbuf, c.nbits, c.overrun = 0, 0, 0
	return nil
}

// bytes returns the next n (at most keepBack) bytes of src, on a byte
// boundary with an empty bit buffer.
func (c *Checker) bytes(n int) ([]byte, error) {
	for len(c.in)-c.ip < n {
		if c.eof {
			return nil, c.truncated()
		}
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
	b := c.in[c.ip : c.ip+n]
	c.ip += n
	return b, nil
}

// flush hands the output not handed over yet to the writer, and the
// adler32 over it.
func (c *Checker) flush() error {
	p := c.out[c.flushed:c.op]
	if len(p) == 0 {
		return nil
	}
	c.sum = adler32Update(c.sum, p)
	c.flushed = c.op
	c.total += int64(len(p))
	_, err := c.w.Write(p)
	return err
}

// slide hands the output over and moves the last window of it to the
// front of out.
func (c *Checker) slide() error {
	if err := c.flush(); err != nil {
		return err
	}
	if c.op > window {
		copy(c.out[:window], c.out[c.op-window:c.op])
		c.op, c.flushed = window, window
	}
	return nil
}

// stored copies a stored block.
func (c *Checker) stored() error {
	c.nbits -= c.nbits & 7
	if err := c.align(); err != nil {
		return err
	}
	h, err := c.bytes(4)
	if err != nil {
		return err
	}
	n := int(binary.LittleEndian.Uint16(h))
	if uint16(n) != ^binary.LittleEndian.Uint16(h[2:]) {
		return c.corrupt("stored block length")
	}
	for n > 0 {
		if c.op > outLimit {
			if err := c.slide(); err != nil {
				return err
			}
		}
		if c.ip == len(c.in) {
			if c.eof {
				return c.truncated()
			}
			if err := c.fill(); err != nil {
				return err
			}
			continue
		}
		k := copy(c.out[c.op:min(len(c.out), c.op+n)], c.in[c.ip:])
		c.op += k
		c.ip += k
		n -= k
	}
	return nil
}

// dynamic reads a dynamic Huffman block's code lengths and builds its
// tables, refusing what compress/flate refuses.
func (c *Checker) dynamic() error {
	if err := c.refill(); err != nil {
		return err
	}
	nlit := int(c.bitbuf&0x1f) + 257
	ndist := int(c.bitbuf>>5&0x1f) + 1
	nclen := int(c.bitbuf>>10&0xf) + 4
	c.bitbuf >>= 14
	c.nbits -= 14
	if nlit > maxNumLit || ndist > maxNumDist {
		return c.corrupt("too many codes")
	}
	var pl [19]uint8
	for i := range nclen {
		if c.nbits < 3 {
			if err := c.refill(); err != nil {
				return err
			}
		}
		pl[codeOrder[i]] = uint8(c.bitbuf & 7)
		c.bitbuf >>= 3
		c.nbits -= 3
	}
	if !build(c.pre[:], pl[:], preTmpl[:], preBits) {
		return c.corrupt("code length code")
	}
	lens := c.lens[:nlit+ndist]
	for i := 0; i < len(lens); {
		if c.nbits < 14 {
			if err := c.refill(); err != nil {
				return err
			}
		}
		e := c.pre[c.bitbuf&(1<<preBits-1)]
		if e&flagExc != 0 {
			return c.corrupt("code length code")
		}
		l := uint(e & 0xff)
		c.bitbuf >>= l
		c.nbits -= l
		sym := uint8(e >> 16)
		if sym < 16 {
			lens[i] = sym
			i++
			continue
		}
		var rep int
		var v uint8
		switch sym {
		case 16:
			if i == 0 {
				return c.corrupt("repeat with no previous length")
			}
			rep, v = 3+int(c.bitbuf&3), lens[i-1]
			c.bitbuf >>= 2
			c.nbits -= 2
		case 17:
			rep = 3 + int(c.bitbuf&7)
			c.bitbuf >>= 3
			c.nbits -= 3
		default:
			rep = 11 + int(c.bitbuf&0x7f)
			c.bitbuf >>= 7
			c.nbits -= 7
		}
		if i+rep > len(lens) {
			return c.corrupt("repeat past the code lengths")
		}
		for range rep {
			lens[i] = v
			i++
		}
	}
	if !build(c.lit[:], lens[:nlit], litTmpl[:], litBits) || !build(c.dist[:], lens[nlit:], distTmpl[:], distBits) {
		return c.corrupt("Huffman code")
	}
	return nil
}

var codeOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// huffman decodes one Huffman block with the tables lt and dt. The bit
// buffer, the input and output positions live in locals for the loop.
func (c *Checker) huffman(lt *[litEnough]uint32, dt *[distEnough]uint32) error {
	in := c.in
	ip := c.ip
	bitbuf, nbits := c.bitbuf, c.nbits
	out := c.out[:outSize]
	op := c.op
	for {
		if op > outLimit {
			c.ip, c.bitbuf, c.nbits, c.op = ip, bitbuf, nbits, op
			if err := c.slide(); err != nil {
				return err
			}
			op = c.op
		}
		// At least 56 bits in the buffer: a length and a distance with
		// their extra bits take at most 48.
		if ip+8 <= len(in) {
			bitbuf |= binary.LittleEndian.Uint64(in[ip:]) << (nbits & 63)
			ip += int((63 - nbits) >> 3)
			nbits |= 56
		} else {
			c.ip, c.bitbuf, c.nbits, c.op = ip, bitbuf, nbits, op
			if err := c.refill(); err != nil {
				return err
			}
			in, ip, bitbuf, nbits = c.in, c.ip, c.bitbuf, c.nbits
		}
		e := lt[bitbuf&(1<<litBits-1)]
		if e&flagLit != 0 {
			// Up to three literals (11 bits at most each from the main
			// table) on one refill.
			n := e & 63
			bitbuf >>= n
			nbits -= uint(n)
			out[op] = byte(e >> 16)
			op++
			e = lt[bitbuf&(1<<litBits-1)]
			if e&flagLit == 0 {
				continue
			}
			n = e & 63
			bitbuf >>= n
			nbits -= uint(n)
			out[op] = byte(e >> 16)
			op++
			e = lt[bitbuf&(1<<litBits-1)]
			if e&flagLit == 0 {
				continue
			}
			n = e & 63
			bitbuf >>= n
			nbits -= uint(n)
			out[op] = byte(e >> 16)
			op++
			continue
		}
		if e&flagSub != 0 {
			bitbuf >>= litBits
			nbits -= litBits
			e = lt[(e>>16 + uint32(bitbuf)&(1<<(e>>8&15)-1))]
			if e&flagLit != 0 {
				n := e & 63
				bitbuf >>= n
				nbits -= uint(n)
				out[op] = byte(e >> 16)
				op++
				continue
			}
		}
		n := e & 63
		if e&flagExc != 0 {
			if e&flagEOB != 0 {
				bitbuf >>= n
				nbits -= uint(n)
				c.ip, c.bitbuf, c.nbits, c.op = ip, bitbuf, nbits, op
				return nil
			}
			c.ip, c.bitbuf, c.nbits, c.op = ip, bitbuf, nbits, op
			return c.corrupt("invalid literal/length code")
		}
		length := int(e>>16 + uint32(bitbuf&(1<<n-1))>>(e>>8&15))
		bitbuf >>= n
		nbits -= uint(n)

		e = dt[bitbuf&(1<<distBits-1)]
		if e&flagSub != 0 {
			bitbuf >>= distBits
			nbits -= distBits
			e = dt[(e>>16 + uint32(bitbuf)&(1<<(e>>8&15)-1))]
		}
		if e&flagExc != 0 {
			c.ip, c.bitbuf, c.nbits, c.op = ip, bitbuf, nbits, op
			return c.corrupt("invalid distance code")
		}
		n = e & 63
		dist := int(e>>16 + uint32(bitbuf&(1<<n-1))>>(e>>8&15))
		bitbuf >>= n
		nbits -= uint(n)
		if dist > op {
			c.ip, c.bitbuf, c.nbits, c.op = ip, bitbuf, nbits, op
			return c.corrupt("distance too far back")
		}

		// Copy length bytes from dist back; the loops may write up to 7
		// bytes past the end, which later output overwrites.
		src := op - dist
		end := op + length
		switch {
		case dist >= 8:
			for op < end {
				binary.LittleEndian.PutUint64(out[op:], binary.LittleEndian.Uint64(out[src:]))
				op += 8
				src += 8
			}
		case dist == 1:
			v := uint64(out[src]) * 0x0101010101010101
			for op < end {
				binary.LittleEndian.PutUint64(out[op:], v)
				op += 8
			}
		default:
			for op < end {
				out[op] = out[src]
				op++
				src++
			}
		}
		op = end
	}
}

// adler32Update is hash/adler32's update, on the running sum, eight bytes
// at a time: for bytes b0..b7, s1 grows by their sum and s2 by 8·s1 plus
// 8·b0 + 7·b1 + … + 1·b7, both sums taken in 16-bit lanes of one word
// (products and sums stay below 2^16, so no lane carries into the next).
func adler32Update(sum uint32, p []byte) uint32 {
	const (
		mod  = 65521
		nmax = 5552 // the most bytes before s2 could overflow 32 bits; 8·694
		lo   = 0x00ff00ff00ff00ff
		ones = 0x0001000100010001
		// Weights of the even bytes (b0, b2, b4, b6 in lanes 0 to 3) and
		// of the odd ones, lane k's weight in lane 3-k of the multiplier:
		// lane 3 of the product is then the weighted sum.
		wEven = 2 | 4<<16 | 6<<32 | 8<<48
		wOdd  = 1 | 3<<16 | 5<<32 | 7<<48
	)
	s1, s2 := uint64(sum&0xffff), uint64(sum>>16)
	for len(p) > 0 {
		q := p[:min(len(p), nmax)]
		p = p[len(q):]
		for len(q) >= 8 {
			w := binary.LittleEndian.Uint64(q)
			e, o := w&lo, w>>8&lo
			s2 += 8*s1 + (e*wEven)>>48 + (o*wOdd)>>48
			s1 += ((e + o) * ones) >> 48
			q = q[8:]
		}
		for _, x := range q {
			s1 += uint64(x)
			s2 += s1
		}
		s1 %= mod
		s2 %= mod
	}
	return uint32(s2<<16 | s1)
}
