package instance

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// This file decides whether two locator templates can denote the same
// thing. A template P{name}S with the name language N (the strings that
// pass ValidateName's hard refusals and the layout's name_pattern) denotes
// the regular language P·N·S. Two templates A and B collide when
//
//	P_A·N_A·S_A ∩ P_B·N_B·S_B ≠ ∅                   (same locator), or
//	P_A·N_A·S_A·"/"·Σ⁺ ∩ P_B·N_B·S_B ≠ ∅            (A's path contains B's)
//
// and both questions are decided exactly by a breadth-first search of the
// product of two automata: the literals of each template around a lazy
// subset construction of the name_pattern's compiled program. The search
// returns the shortest string in the intersection, from which the two
// instance names are read back: a collision always comes with an example
// that really collides. The alphabet is finite without loss: runes are
// grouped into classes that no range of either program and no hard refusal
// tells apart, and one rune per class stands for it. When the search grows
// past a bound it answers "undecided", which the callers treat as a
// collision (when in doubt, refuse).
//
// A template never collides with itself for two different names: P·n·S
// determines n, and names hold no '/', so neither can P·n·S contain
// P·m·S (both have the same number of path elements).

// Relation says how two locators overlap.
type Relation int

// Relations between the locators of two (instance, component) pairs.
const (
	Same      Relation = iota // both denote the same path, database or unit
	AContains                 // A's path contains B's
	BContains                 // B's path contains A's
)

// Collision is a proof that two locator templates overlap: instance NameA
// through template A and instance NameB through template B give LocatorA
// and LocatorB, which are equal or one contains the other.
type Collision struct {
	NameA, NameB       string
	LocatorA, LocatorB string
	Relation           Relation
	// Undecided is set when the search gave up before deciding; the names
	// and locators are then empty and the templates are refused anyway.
	Undecided bool
}

// Describe says what collides, in words, with the names and components
// given by the caller.
func (c *Collision) Describe(compA, compB string) string {
	if c.Undecided {
		return fmt.Sprintf("fleetsafe could not prove that components %s and %s never denote the same thing for two instances; refusing", compA, compB)
	}
	a := fmt.Sprintf("instance %q component %s (%s)", c.NameA, compA, c.LocatorA)
	b := fmt.Sprintf("instance %q component %s (%s)", c.NameB, compB, c.LocatorB)
	switch c.Relation {
	case AContains:
		return fmt.Sprintf("%s contains %s", a, b)
	case BContains:
		return fmt.Sprintf("%s contains %s", b, a)
	}
	return fmt.Sprintf("instance %q component %s and instance %q component %s both denote %s", c.NameA, compA, c.NameB, compB, c.LocatorA)
}

// LocatorTemplate is one template with the language of its names.
type LocatorTemplate struct {
	Template Template
	// Pattern is the whole-name pattern (as Layout.NamePattern); nil means
	// any name that passes ValidateName's hard refusals.
	Pattern *regexp.Regexp
}

// maxSearchStates bounds one search; past it the answer is "undecided".
const maxSearchStates = 20000

// FindCollision decides whether a and b can denote the same locator for
// two (instance, component) pairs, or, when paths is set, whether one can
// contain the other. It returns nil when they never can. Call it for two
// different components: one template never collides with itself.
func FindCollision(a, b LocatorTemplate, paths bool) (*Collision, error) {
	// Every locator of A starts with A's literal prefix, every one of B
	// with B's: a common string (or one containing the other, which starts
	// with it too) needs one prefix to start the other.
	if !strings.HasPrefix(a.Template.Prefix, b.Template.Prefix) && !strings.HasPrefix(b.Template.Prefix, a.Template.Prefix) {
		return nil, nil
	}
	analysisMu.Lock()
	defer analysisMu.Unlock()
	da, err := cachedDFA(a.Pattern)
	if err != nil {
		return nil, err
	}
	db, err := cachedDFA(b.Pattern)
	if err != nil {
		return nil, err
	}
	alpha := da.alphabetWith(db)
	la := &locLang{prefix: []rune(a.Template.Prefix), suffix: []rune(a.Template.Suffix), name: da}
	lb := &locLang{prefix: []rune(b.Template.Prefix), suffix: []rune(b.Template.Suffix), name: db}
	rels := []Relation{Same}
	if paths {
		rels = append(rels, AContains, BContains)
	}
	slashes := func(t Template) int { return strings.Count(t.Prefix, "/") + strings.Count(t.Suffix, "/") }
	ka, kb := slashes(a.Template), slashes(b.Template)
	for _, rel := range rels {
		// Names hold no '/': equal locators have as many path elements,
		// and a container has fewer than what it contains. Equal
		// locators end with both suffixes too.
		switch {
		case rel == Same && (ka != kb || !strings.HasSuffix(a.Template.Suffix, b.Template.Suffix) && !strings.HasSuffix(b.Template.Suffix, a.Template.Suffix)):
			continue
		case rel == AContains && ka >= kb, rel == BContains && kb >= ka:
			continue
		}
		x, y := la, lb
		if rel == BContains {
			x, y = lb, la
		}
		w, undecided := search(x, y, rel != Same, alpha)
		if undecided || da.overflow || db.overflow {
			return &Collision{Undecided: true}, nil
		}
		if w == "" {
			continue
		}
		c := &Collision{Relation: rel}
		switch rel {
		case Same:
			c.LocatorA, c.LocatorB = w, w
			c.NameA, _ = a.Template.Match(w)
			c.NameB, _ = b.Template.Match(w)
		case AContains:
			c.LocatorB = w
			c.NameB, _ = b.Template.Match(w)
			c.LocatorA = containerPrefix(w, a.Template)
			c.NameA, _ = a.Template.Match(c.LocatorA)
		case BContains:
			c.LocatorA = w
			c.NameA, _ = a.Template.Match(w)
			c.LocatorB = containerPrefix(w, b.Template)
			c.NameB, _ = b.Template.Match(c.LocatorB)
		}
		return c, nil
	}
	return nil, nil
}

// containerPrefix cuts w before the '/' that follows a path of t's number
// of elements (names hold no '/').
func containerPrefix(w string, t Template) string {
	n := strings.Count(t.Prefix, "/") + strings.Count(t.Suffix, "/")
	seen := 0
	for i := 0; i < len(w); i++ {
		if w[i] == '/' {
			if seen == n {
				return w[:i]
			}
			seen++
		}
	}
	return w
}

// analysisMu serializes analyses: the name automata are built lazily and
// shared between them.
var analysisMu sync.Mutex

// dfaCache keeps the name automaton of each pattern between analyses (a
// host's layouts share few patterns); it is emptied when it grows.
var dfaCache = map[string]*nameDFA{}

func cachedDFA(re *regexp.Regexp) (*nameDFA, error) {
	key := ""
	if re != nil {
		key = re.String()
	}
	if d, ok := dfaCache[key]; ok && !d.overflow {
		return d, nil
	}
	p, err := compileName(re)
	if err != nil {
		return nil, err
	}
	if len(dfaCache) >= 64 {
		clear(dfaCache)
	}
	d := newNameDFA(p)
	dfaCache[key] = d
	return d, nil
}

// compileName compiles a whole-name pattern (nil: any name).
func compileName(re *regexp.Regexp) (*syntax.Prog, error) {
	src := `^(?:.+)$`
	if re != nil {
		src = re.String()
	}
	parsed, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("name_pattern %s: %w", src, err)
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return nil, fmt.Errorf("name_pattern %s: %w", src, err)
	}
	return prog, nil
}

// refusedNameRunes are the characters ValidateName never lets into a name
// (besides control characters and white space).
const refusedNameRunes = "/\\*?[]{},;|&$`'\"<>()!~#%"

func nameRuneOK(r rune, first bool) bool {
	switch {
	case !utf8.ValidRune(r):
		return false
	case unicode.IsControl(r) || unicode.IsSpace(r):
		return false
	case strings.ContainsRune(refusedNameRunes, r):
		return false
	case first && (r == '.' || r == '-'):
		return false
	}
	return true
}

// alphabet returns one rune per class of runes that neither program nor
// the hard refusals tell apart, valid name runes only, ASCII first.
func alphabet(progs ...*syntax.Prog) []rune {
	var cands []rune
	for _, r := range alphabetCuts(progs...) {
		if nameRuneOK(r, false) {
			cands = append(cands, r)
		}
	}
	// Keep one rune per class: runes that every rune instruction of both
	// programs, the hard refusals and the word-boundary assertions treat
	// alike are interchangeable inside a name. (Outside names, the search
	// only follows the templates' literal runes.)
	return representatives(cands, func(sig []byte, r rune) []byte {
		sig = append(sig, boolByte(nameRuneOK(r, true)))
		return appendProgSig(sig, r, progs...)
	})
}

// representatives returns one rune of cands per class, the classes told
// apart by signature (which appends a rune's signature to its buffer and
// returns it): the nicest rune of each class for examples, lowercase
// letters first, then digits, then the rest of ASCII, then the rest, each
// group in rune order. cands is sorted in place.
func representatives(cands []rune, signature func(sig []byte, r rune) []byte) []rune {
	rank := func(r rune) int {
		switch {
		case r >= 'a' && r <= 'z':
			return 0
		case r >= '0' && r <= '9':
			return 1
		case r < 0x80:
			return 2
		}
		return 3
	}
	slices.SortFunc(cands, func(x, y rune) int {
		if d := rank(x) - rank(y); d != 0 {
			return d
		}
		return int(x - y)
	})
	seen := map[string]bool{}
	var out []rune
	var sig []byte
	for _, r := range cands {
		sig = signature(sig[:0], r)
		if !seen[string(sig)] {
			seen[string(sig)] = true
			out = append(out, r)
		}
	}
	return out
}

// alphabetCuts returns the runes where the programs' rune instructions,
// ASCII, white space and the surrogate range start or stop telling runes
// apart: every class of runes the programs do not tell apart starts at
// one of them.
func alphabetCuts(progs ...*syntax.Prog) []rune {
	cuts := map[rune]bool{0: true, 0x80: true, 0xA0: true, 0xD800: true, 0xE000: true, utf8.MaxRune: true}
	for r := rune(0x20); r <= 0x7f; r++ {
		cuts[r] = true
	}
	// White space outside ASCII: every one is its own class.
	for _, rt := range unicode.White_Space.R16 {
		for r := rune(rt.Lo); r <= rune(rt.Hi); r += rune(rt.Stride) {
			cuts[r], cuts[r+1] = true, true
		}
	}
	for _, p := range progs {
		for _, in := range p.Inst {
			switch in.Op {
			case syntax.InstRune:
				if len(in.Rune) == 1 && syntax.Flags(in.Arg)&syntax.FoldCase != 0 {
					r := in.Rune[0]
					for f := unicode.SimpleFold(r); ; f = unicode.SimpleFold(f) {
						cuts[f], cuts[f+1] = true, true
						if f == r {
							break
						}
					}
					continue
				}
				for i := 0; i+1 < len(in.Rune); i += 2 {
					cuts[in.Rune[i]], cuts[in.Rune[i+1]+1] = true, true
				}
				if len(in.Rune) == 1 {
					cuts[in.Rune[0]], cuts[in.Rune[0]+1] = true, true
				}
			case syntax.InstRune1:
				cuts[in.Rune[0]], cuts[in.Rune[0]+1] = true, true
			}
		}
	}
	out := make([]rune, 0, len(cuts))
	for r := range cuts {
		if r <= utf8.MaxRune {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// appendProgSig appends to sig how the programs' rune instructions and
// the word-boundary assertions see r.
func appendProgSig(sig []byte, r rune, progs ...*syntax.Prog) []byte {
	sig = append(sig, boolByte(syntax.IsWordChar(r)))
	for _, p := range progs {
		for i := range p.Inst {
			switch in := &p.Inst[i]; in.Op {
			case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
				sig = append(sig, boolByte(runeMatches(in, r)))
			}
		}
	}
	return sig
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// nameDFA is a lazy subset construction of a name program, with the hard
// refusals on top (non-empty, valid runes, no leading '.' or '-').
type nameDFA struct {
	prog   *syntax.Prog
	states []nameState
	index  map[string]int
	next   map[[2]int]int // (state, rune) -> state, -1 when dead
	accept map[int]bool
	// alpha caches alphabet(prog, other.prog) by other.
	alpha map[*nameDFA][]rune
	// overflow is set when the automaton grew past maxDFAStates; the
	// analysis is then undecided.
	overflow bool
}

func (d *nameDFA) alphabetWith(o *nameDFA) []rune {
	if a, ok := d.alpha[o]; ok {
		return a
	}
	if d.alpha == nil {
		d.alpha = map[*nameDFA][]rune{}
	}
	d.alpha[o] = alphabet(d.prog, o.prog)
	return d.alpha[o]
}

// maxDFAStates bounds one name automaton (a pattern such as
// (a|b)*a(a|b){20} has millions of states).
const maxDFAStates = 5000

// nameState is the set of program counters waiting for a rune, with what
// the empty-width assertions need to know of the previous rune.
type nameState struct {
	pcs  []uint32
	prev rune // -1 at the start, else 'a' (word rune) or '.' (other)
}

func newNameDFA(p *syntax.Prog) *nameDFA {
	d := &nameDFA{prog: p, index: map[string]int{}, next: map[[2]int]int{}, accept: map[int]bool{}}
	d.intern(nameState{pcs: []uint32{uint32(p.Start)}, prev: -1})
	return d
}

func (d *nameDFA) intern(s nameState) int {
	var b strings.Builder
	b.WriteString(strconv.Itoa(int(s.prev)))
	for _, pc := range s.pcs {
		b.WriteByte(',')
		b.WriteString(strconv.Itoa(int(pc)))
	}
	k := b.String()
	if i, ok := d.index[k]; ok {
		return i
	}
	d.states = append(d.states, s)
	d.index[k] = len(d.states) - 1
	return len(d.states) - 1
}

// closure returns the rune and match instructions reachable from pcs
// without consuming a rune, given the assertions that hold here.
func (d *nameDFA) closure(pcs []uint32, flags syntax.EmptyOp) []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	var visit func(pc uint32)
	visit = func(pc uint32) {
		if seen[pc] {
			return
		}
		seen[pc] = true
		in := &d.prog.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			visit(in.Out)
			visit(in.Arg)
		case syntax.InstCapture, syntax.InstNop:
			visit(in.Out)
		case syntax.InstEmptyWidth:
			if syntax.EmptyOp(in.Arg)&^flags == 0 {
				visit(in.Out)
			}
		case syntax.InstFail:
		default:
			out = append(out, pc)
		}
	}
	for _, pc := range pcs {
		visit(pc)
	}
	return out
}

func runeMatches(in *syntax.Inst, r rune) bool {
	switch in.Op {
	case syntax.InstRune:
		return in.MatchRune(r)
	case syntax.InstRune1:
		return r == in.Rune[0]
	case syntax.InstRuneAny:
		return true
	case syntax.InstRuneAnyNotNL:
		return r != '\n'
	}
	return false
}

// step returns the state after r, or -1 when no name goes on with r.
func (d *nameDFA) step(state int, r rune) int {
	key := [2]int{state, int(r)}
	if n, ok := d.next[key]; ok {
		return n
	}
	s := d.states[state]
	n := -1
	if nameRuneOK(r, s.prev < 0) {
		var pcs []uint32
		for _, pc := range d.closure(s.pcs, syntax.EmptyOpContext(s.prev, r)) {
			if in := &d.prog.Inst[pc]; runeMatches(in, r) && !slices.Contains(pcs, in.Out) {
				pcs = append(pcs, in.Out)
			}
		}
		if len(pcs) > 0 && len(d.states) >= maxDFAStates {
			d.overflow = true
		} else if len(pcs) > 0 {
			slices.Sort(pcs)
			prev := '.'
			if syntax.IsWordChar(r) {
				prev = 'a'
			}
			n = d.intern(nameState{pcs: pcs, prev: prev})
		}
	}
	d.next[key] = n
	return n
}

// accepting reports whether the runes read so far form a whole name.
func (d *nameDFA) accepting(state int) bool {
	if a, ok := d.accept[state]; ok {
		return a
	}
	s := d.states[state]
	a := false
	if s.prev >= 0 {
		for _, pc := range d.closure(s.pcs, syntax.EmptyOpContext(s.prev, -1)) {
			if d.prog.Inst[pc].Op == syntax.InstMatch {
				a = true
				break
			}
		}
	}
	d.accept[state] = a
	return a
}

// locLang is the automaton of P·N·S, optionally followed by "/"·Σ⁺.
type locLang struct {
	prefix, suffix []rune
	name           *nameDFA
}

type phase uint8

const (
	inPrefix phase = iota
	inName
	inSuffix
	inSlash // expects the '/' after a container
	inTail0 // after the '/', before any rune
	inTail  // at least one rune after the '/'
	atEnd
)

type locState struct {
	ph  phase
	idx int // index in prefix or suffix, or name state
}

// eps returns s and the states reached from it without a rune.
func (l *locLang) eps(s locState, container bool) []locState {
	out := []locState{s}
	for {
		switch {
		case s.ph == inPrefix && s.idx == len(l.prefix):
			s = locState{inName, 0}
		case s.ph == inName && l.name.accepting(s.idx):
			s = locState{inSuffix, 0}
		case s.ph == inSuffix && s.idx == len(l.suffix) && container:
			s = locState{inSlash, 0}
		case s.ph == inSuffix && s.idx == len(l.suffix):
			s = locState{atEnd, 0}
		default:
			return out
		}
		out = append(out, s)
	}
}

// literal returns the one rune s accepts, if it accepts only one.
func (l *locLang) literal(s locState) (rune, bool) {
	switch s.ph {
	case inPrefix:
		if s.idx < len(l.prefix) {
			return l.prefix[s.idx], true
		}
	case inSuffix:
		if s.idx < len(l.suffix) {
			return l.suffix[s.idx], true
		}
	case inSlash:
		return '/', true
	}
	return 0, false
}

func (l *locLang) step(s locState, r rune) (locState, bool) {
	switch s.ph {
	case inPrefix:
		if s.idx < len(l.prefix) && l.prefix[s.idx] == r {
			return locState{inPrefix, s.idx + 1}, true
		}
	case inSuffix:
		if s.idx < len(l.suffix) && l.suffix[s.idx] == r {
			return locState{inSuffix, s.idx + 1}, true
		}
	case inName:
		if n := l.name.step(s.idx, r); n >= 0 {
			return locState{inName, n}, true
		}
	case inSlash:
		if r == '/' {
			return locState{inTail0, 0}, true
		}
	case inTail0, inTail:
		return locState{inTail, 0}, true
	}
	return s, false
}

func (l *locLang) done(s locState, container bool) bool {
	if container {
		return s.ph == inTail
	}
	return s.ph == atEnd
}

// search returns the shortest string of x (followed by "/"·Σ⁺ when
// container is set) that is also a string of y, "" when there is none.
func search(x, y *locLang, container bool, alpha []rune) (string, bool) {
	type node struct {
		a, b   locState
		parent int
		r      rune
	}
	type key struct{ a, b locState }
	nodes := []node{{a: locState{inPrefix, 0}, b: locState{inPrefix, 0}, parent: -1}}
	seen := map[key]bool{{nodes[0].a, nodes[0].b}: true}
	for i := 0; i < len(nodes); i++ {
		if len(nodes) > maxSearchStates || x.name.overflow || y.name.overflow {
			return "", true
		}
		cur := nodes[i]
		for _, a := range x.eps(cur.a, container) {
			for _, b := range y.eps(cur.b, false) {
				if x.done(a, container) && y.done(b, false) {
					var rs []rune
					for j := i; nodes[j].parent >= 0; j = nodes[j].parent {
						rs = append(rs, nodes[j].r)
					}
					slices.Reverse(rs)
					return string(rs), false
				}
				var cands []rune
				if r, ok := x.literal(a); ok {
					cands = []rune{r}
				} else if r, ok := y.literal(b); ok {
					cands = []rune{r}
				} else if a.ph == inName || b.ph == inName {
					cands = alpha
				} else if a.ph == inTail0 || a.ph == inTail {
					// y is past its name and its literals: nothing left.
					continue
				}
				for _, r := range cands {
					na, ok := x.step(a, r)
					if !ok {
						continue
					}
					nb, ok := y.step(b, r)
					if !ok {
						continue
					}
					k := key{na, nb}
					if seen[k] {
						continue
					}
					seen[k] = true
					nodes = append(nodes, node{a: na, b: nb, parent: i, r: r})
				}
			}
		}
	}
	return "", false
}
