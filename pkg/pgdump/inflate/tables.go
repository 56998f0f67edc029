package inflate

import "math/bits"

// A decode table entry (uint32), looked up with the next tableBits bits of
// the input (least significant first):
//
//	bits 0-7    bits to consume: the codeword's length plus its extra bits
//	bits 8-11   the codeword's length (for a subtable pointer: the
//	            subtable's index bits)
//	bits 12-15  flags
//	bits 16-31  the value: a literal byte, a base length or distance, or a
//	            subtable's first index
//
// The extra bits of a length or distance are then (bitbuf & mask(total)) >>
// codeword length, added to the base: one lookup decodes a symbol and
// locates its extra bits.
const (
	flagSub = 1 << 12 // subtable pointer (main table only)
	flagEOB = 1 << 13 // end of block (with flagExc)
	flagExc = 1 << 14 // end of block, or (alone) a code no symbol has
	flagLit = 1 << 15 // literal byte

	invalid = flagExc

	litBits  = 11 // main literal/length table index bits
	distBits = 8  // main distance table index bits
	preBits  = 7  // code length code table (codes are at most 7 bits long)

	// The most entries a complete code can need (main table plus
	// subtables), from zlib's enough program (as libdeflate sizes them):
	// 288 symbols, 11 root bits, 15 bits at most: 2342; 32 symbols, 8 root
	// bits: 402.
	litEnough  = 2342
	distEnough = 402

	maxNumLit  = 286
	maxNumDist = 30
)

var lengthBase = [...]uint32{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
var lengthExtra = [...]uint32{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
var distBase = [...]uint32{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
var distExtra = [...]uint32{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

// Entry templates by symbol: value, flags, and the extra bits count in the
// low byte; build adds the codeword length.
var (
	litTmpl  [288]uint32
	distTmpl [32]uint32
	preTmpl  [19]uint32

	fixedLit  [litEnough]uint32
	fixedDist [distEnough]uint32
)

func init() {
	for s := range 256 {
		litTmpl[s] = flagLit | uint32(s)<<16
	}
	litTmpl[256] = flagExc | flagEOB
	for s := 257; s < 286; s++ {
		litTmpl[s] = lengthBase[s-257]<<16 | lengthExtra[s-257]
	}
	litTmpl[286], litTmpl[287] = invalid, invalid // in the fixed code only
	for s := range 30 {
		distTmpl[s] = distBase[s]<<16 | distExtra[s]
	}
	distTmpl[30], distTmpl[31] = invalid, invalid // in the fixed code only
	for s := range 19 {
		preTmpl[s] = uint32(s) << 16
	}
	var lens [288]uint8
	for s := range lens {
		switch {
		case s < 144:
			lens[s] = 8
		case s < 256:
			lens[s] = 9
		case s < 280:
			lens[s] = 7
		default:
			lens[s] = 8
		}
	}
	if !build(fixedLit[:], lens[:], litTmpl[:], litBits) {
		panic("inflate: fixed literal/length code")
	}
	for s := range 32 {
		lens[s] = 5
	}
	if !build(fixedDist[:], lens[:32], distTmpl[:], distBits) {
		panic("inflate: fixed distance code")
	}
}

// build fills t with the decode table of the canonical Huffman code of the
// code lengths lens (each at most 15), with entries made from tmpl. It
// refuses exactly the codes compress/flate refuses: over-subscribed ones,
// and incomplete ones except the empty code and a single code of length
// 1 (zlib accepts both; using a missing code is then an error at
// decoding). Positions no code reaches hold the invalid entry.
func build(t []uint32, lens []uint8, tmpl []uint32, tableBits uint) bool {
	var count [16]int
	for _, l := range lens {
		count[l&15]++
	}
	count[0] = 0
	minLen, maxLen := 0, 0
	for l := 1; l < 16; l++ {
		if count[l] != 0 {
			if minLen == 0 {
				minLen = l
			}
			maxLen = l
		}
	}
	mainSize := 1 << tableBits
	for i := range t[:mainSize] {
		t[i] = invalid
	}
	if maxLen == 0 {
		return true // empty: any use is an error
	}
	// The same completeness test as compress/flate's huffmanDecoder.init.
	code := 0
	var nextcode [16]int
	for l := minLen; l <= maxLen; l++ {
		code <<= 1
		nextcode[l] = code
		code += count[l]
	}
	if code != 1<<uint(maxLen) && !(code == 1 && maxLen == 1) {
		return false
	}

	// Symbols in canonical order: by length, then by symbol.
	var offs [16]int
	for l := 1; l < 16; l++ {
		offs[l] = offs[l-1] + count[l-1]
	}
	var sorted [288]uint16
	for s, l := range lens {
		if l != 0 {
			sorted[offs[l]] = uint16(s)
			offs[l]++
		}
	}
	n := offs[15]
	rem := count // codes of each length not placed yet
	next := mainSize
	subStart, subBits, prefix := 0, uint(0), -1
	for _, s := range sorted[:n] {
		l := uint(lens[s])
		c := nextcode[l]
		nextcode[l]++
		rev := int(bits.Reverse16(uint16(c))) >> (16 - l)
		if l <= tableBits {
			e := tmpl[s] + uint32(l) + uint32(l)<<8
			for off := rev; off < mainSize; off += 1 << l {
				t[off] = e
			}
			rem[l]--
			continue
		}
		if p := rev & (mainSize - 1); p != prefix {
			// A new subtable, as large as the codes sharing this prefix
			// need (zlib's inflate_table).
			prefix = p
			cur := l - tableBits
			left := 1 << cur
			for cur+tableBits < uint(maxLen) {
				left -= rem[cur+tableBits]
				if left <= 0 {
					break
				}
				cur++
				left <<= 1
			}
			subStart, subBits = next, cur
			next += 1 << cur
			if next > len(t) {
				return false // cannot happen for a complete code
			}
			for i := range t[subStart:next] {
				t[subStart+i] = invalid
			}
			t[p] = flagSub | uint32(subStart)<<16 | uint32(subBits)<<8 | uint32(tableBits)
		}
		sl := l - tableBits
		e := tmpl[s] + uint32(sl) + uint32(sl)<<8
		for off := rev >> tableBits; off < 1<<subBits; off += 1 << sl {
			t[subStart+off] = e
		}
		rem[l]--
	}
	return true
}
