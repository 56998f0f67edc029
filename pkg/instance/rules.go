package instance

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// This file decides whether two backup rules can match the same file.
// A rule's path is a glob G = A{name}B (filepath.Match syntax: '*' any
// run of characters but '/', '?' one, '[…]' a class, '\' quotes) with the
// layout's name language N in place of {name}. Two rules collide when a
// file matches both, for some names: L(A·N·B) ∩ L(A'·N'·B') ≠ ∅. That is
// decided exactly, like component templates (ambiguity.go), by a
// breadth-first search of the product of the two rules' automata (glob
// tokens around the name automaton), over an alphabet with one rune per
// class that no token nor name program tells apart. The shortest common
// file comes back with the two names read from it.

// globTok is one token of a backup rule's glob.
type globTok struct {
	kind   byte // 'l' literal, '*' star, '?' any, '[' class, 'n' the name
	r      rune
	neg    bool
	ranges [][2]rune
}

func (t globTok) matches(r rune) bool {
	switch t.kind {
	case 'l':
		return r == t.r
	case '*', '?':
		return r != '/'
	case '[':
		if r == '/' {
			return false
		}
		in := slices.ContainsFunc(t.ranges, func(rg [2]rune) bool { return rg[0] <= r && r <= rg[1] })
		return in != t.neg
	}
	return false
}

// parseGlob tokenizes the glob text around {name} (filepath.Match syntax;
// the layout parser refused malformed globs).
func parseGlob(s string) ([]globTok, error) {
	var out []globTok
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '*', '?':
			out = append(out, globTok{kind: byte(c)})
		case '\\':
			if i+1 >= len(rs) {
				return nil, fmt.Errorf("trailing backslash")
			}
			i++
			out = append(out, globTok{kind: 'l', r: rs[i]})
		case '[':
			t := globTok{kind: '['}
			i++
			if i < len(rs) && rs[i] == '^' {
				t.neg = true
				i++
			}
			first := true
			for ; i < len(rs) && (rs[i] != ']' || first); i++ {
				first = false
				lo := rs[i]
				if lo == '\\' && i+1 < len(rs) {
					i++
					lo = rs[i]
				}
				hi := lo
				if i+2 < len(rs) && rs[i+1] == '-' && rs[i+2] != ']' {
					i += 2
					hi = rs[i]
					if hi == '\\' && i+1 < len(rs) {
						i++
						hi = rs[i]
					}
				}
				t.ranges = append(t.ranges, [2]rune{lo, hi})
			}
			if i >= len(rs) {
				return nil, fmt.Errorf("unclosed character class")
			}
			out = append(out, t)
		default:
			out = append(out, globTok{kind: 'l', r: c})
		}
	}
	return out, nil
}

// ruleLang is the automaton of one rule: its tokens, with the name
// automaton at the 'n' token.
type ruleLang struct {
	toks []globTok
	name *nameDFA
}

// ruleState is a position in a rule: the token index, and the name
// automaton's state while inside the name.
type ruleState struct{ pos, ns int }

// eps returns the states reachable without a rune: past a star (it may
// match nothing), past a name that may end here.
func (l *ruleLang) eps(s ruleState) []ruleState {
	out := []ruleState{s}
	for i := 0; i < len(out); i++ {
		c := out[i]
		if c.pos >= len(l.toks) {
			continue
		}
		t := l.toks[c.pos]
		if t.kind == '*' || t.kind == 'n' && l.name.accepting(c.ns) {
			n := ruleState{c.pos + 1, 0}
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// step returns the state after r and whether r was read as part of the
// name.
func (l *ruleLang) step(s ruleState, r rune) (ruleState, bool, bool) {
	if s.pos >= len(l.toks) {
		return s, false, false
	}
	t := l.toks[s.pos]
	switch t.kind {
	case 'n':
		if n := l.name.step(s.ns, r); n >= 0 {
			return ruleState{s.pos, n}, true, true
		}
		return s, false, false
	case '*':
		if t.matches(r) {
			return s, false, true
		}
		return s, false, false
	}
	if t.matches(r) {
		return ruleState{s.pos + 1, 0}, false, true
	}
	return s, false, false
}

// RuleCollision is a file two backup rules both match: FileA == FileB,
// NameA through rule A, NameB through rule B.
type RuleCollision struct {
	NameA, NameB string
	File         string
	Undecided    bool
}

// maxRuleSearchStates bounds one rule search; past it the answer is
// "undecided", which the callers treat as a collision.
const maxRuleSearchStates = 200000

// FindRuleCollision decides whether two backup rule paths (each with
// {name} once, a glob around it) can match one file, each with a name of
// its pattern (nil: any name ValidateName accepts). It returns nil when
// they never can.
func FindRuleCollision(pathA string, patA *regexp.Regexp, pathB string, patB *regexp.Regexp) (*RuleCollision, error) {
	la, err := ruleLangOf(pathA)
	if err != nil {
		return nil, err
	}
	lb, err := ruleLangOf(pathB)
	if err != nil {
		return nil, err
	}
	analysisMu.Lock()
	defer analysisMu.Unlock()
	if la.name, err = cachedDFA(patA); err != nil {
		return nil, err
	}
	if lb.name, err = cachedDFA(patB); err != nil {
		return nil, err
	}
	alpha := ruleAlphabet(la, lb)
	type node struct {
		a, b     ruleState
		parent   int
		r        rune
		inA, inB bool
	}
	type key struct{ a, b ruleState }
	nodes := []node{{parent: -1}}
	seen := map[key]bool{{}: true}
	for i := 0; i < len(nodes); i++ {
		if len(nodes) > maxRuleSearchStates || la.name.overflow || lb.name.overflow {
			return &RuleCollision{Undecided: true}, nil
		}
		cur := nodes[i]
		for _, a := range la.eps(cur.a) {
			for _, b := range lb.eps(cur.b) {
				if a.pos == len(la.toks) && b.pos == len(lb.toks) {
					var file, na, nb []rune
					for j := i; nodes[j].parent >= 0; j = nodes[j].parent {
						file = append(file, nodes[j].r)
						if nodes[j].inA {
							na = append(na, nodes[j].r)
						}
						if nodes[j].inB {
							nb = append(nb, nodes[j].r)
						}
					}
					slices.Reverse(file)
					slices.Reverse(na)
					slices.Reverse(nb)
					return &RuleCollision{File: string(file), NameA: string(na), NameB: string(nb)}, nil
				}
				cands := alpha
				if a.pos < len(la.toks) && la.toks[a.pos].kind == 'l' {
					cands = []rune{la.toks[a.pos].r}
				} else if b.pos < len(lb.toks) && lb.toks[b.pos].kind == 'l' {
					cands = []rune{lb.toks[b.pos].r}
				}
				for _, r := range cands {
					na, inA, ok := la.step(a, r)
					if !ok {
						continue
					}
					nb, inB, ok := lb.step(b, r)
					if !ok {
						continue
					}
					k := key{na, nb}
					if seen[k] {
						continue
					}
					seen[k] = true
					nodes = append(nodes, node{a: na, b: nb, parent: i, r: r, inA: inA, inB: inB})
				}
			}
		}
	}
	return nil, nil
}

func ruleLangOf(path string) (*ruleLang, error) {
	i := strings.Index(path, Placeholder)
	if i < 0 {
		return nil, fmt.Errorf("backup rule path %q: no {name}", path)
	}
	pre, err := parseGlob(path[:i])
	if err != nil {
		return nil, fmt.Errorf("backup rule path %q: %w", path, err)
	}
	suf, err := parseGlob(path[i+len(Placeholder):])
	if err != nil {
		return nil, fmt.Errorf("backup rule path %q: %w", path, err)
	}
	toks := append(append(pre, globTok{kind: 'n'}), suf...)
	return &ruleLang{toks: toks}, nil
}

// ruleAlphabet returns one rune per class of runes that no token of
// either rule, no name program and no hard refusal tells apart.
func ruleAlphabet(a, b *ruleLang) []rune {
	cuts := map[rune]bool{'/': true, '/' + 1: true}
	for _, r := range alphabetCuts(a.name.prog, b.name.prog) {
		cuts[r] = true
	}
	for _, l := range []*ruleLang{a, b} {
		for _, t := range l.toks {
			switch t.kind {
			case 'l':
				cuts[t.r], cuts[t.r+1] = true, true
			case '[':
				for _, rg := range t.ranges {
					cuts[rg[0]], cuts[rg[1]+1] = true, true
				}
			}
		}
	}
	var cands []rune
	for r := range cuts {
		if r >= 0 && r <= utf8.MaxRune {
			cands = append(cands, r)
		}
	}
	// Keep one rune per class: the name programs' and the hard refusals'
	// view, and every token's.
	return representatives(cands, func(sig []byte, r rune) []byte {
		sig = append(sig, boolByte(nameRuneOK(r, true)), boolByte(nameRuneOK(r, false)), boolByte(r == '/'))
		sig = appendProgSig(sig, r, a.name.prog, b.name.prog)
		for _, l := range []*ruleLang{a, b} {
			for _, t := range l.toks {
				if t.kind == 'l' || t.kind == '[' {
					sig = append(sig, boolByte(t.matches(r)))
				}
			}
		}
		return sig
	})
}
