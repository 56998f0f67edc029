package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mholt/archives"

	"github.com/fleetsafe/fleetsafe/pkg/asynchash"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// VerifyWritten is the soft delete's read-back check of the archive it
// has just written: Check's verdict, in memory that does not grow
// with the number of files.
//
// It first runs checkStream, which accepts only archives that
// Check accepts, and only those in the order fleetsafe writes them.
// Whenever checkStream does not pass, for whatever reason, Check
// runs and its verdict and its error are returned: a refusal is exactly
// the refusal of the one check, at the cost of a second read (and of
// Check's memory) on the path that refuses.
func VerifyWritten(ctx context.Context, st store.Store, key, tmpDir string) error {
	if err := checkStream(ctx, st, key, tmpDir); err == nil {
		return nil
	}
	_, _, err := Check(ctx, st, key)
	return err
}

// errNotStreamed is checkStream's refusal: the archive is not one it can
// vouch for alone (not in fleetsafe's order, or not sound); Check
// says which.
var errNotStreamed = errors.New("not passed by the streaming check")

// checkStreamHook, when set (tests), runs once the last entry has been
// checked, while everything the check holds is still live.
var checkStreamHook func()

// checkStream applies every check of Check, reading the archive
// once and holding one file entry at a time: manifest.json is spooled to
// an unlinked temporary file in tmpDir ("" for the system's), checked
// entry by entry (planStream) and then read again alongside the archive,
// each archive entry compared with the manifest's next one. It is
// stricter than Check on order only: the manifest must list each
// component's entries together, every name after the previous one in the
// order of a walk (path elements compared byte by byte, parents first),
// and the archive must hold the entries in the manifest's order (dumps
// anywhere). Any other archive gets errNotStreamed, never a pass.
func checkStream(ctx context.Context, st store.Store, key, tmpDir string) error {
	want, err := ReadSidecar(ctx, st, key)
	if err != nil {
		return err
	}
	f, err := OpenMetered(ctx, PhaseVerify, st, key)
	if err != nil {
		return err
	}
	defer f.Close()
	got, err := checkStreamOf(ctx, f, tmpDir)
	if err != nil {
		return err
	}
	if got != want {
		return errNotStreamed
	}
	return nil
}

// checkStreamOf is checkStream of the archive read from f, to its end:
// every check but the comparison with the sidecar, whose digest (of the
// bytes read, or, encrypted, of the ciphertext) it returns.
func checkStreamOf(ctx context.Context, f io.Reader, tmpDir string) (string, error) {
	rs := RawSumOf(f)
	var whole io.Writer = io.Discard
	var plainSum *asynchash.Hash
	if rs == nil {
		plainSum = asynchash.New()
		whole = plainSum
	}
	var sm *spooledManifest
	defer func() {
		if sm != nil {
			sm.close()
		}
	}()
	restoreMD := false
	dumpsSeen := map[string]bool{}
	buf := make([]byte, 256<<10)
	var sums fileSums
	defer sums.wait()
	err := Codec.Extract(ctx, io.TeeReader(f, whole), func(ctx context.Context, fi archives.FileInfo) error {
		name := fi.NameInArchive
		hdr, _ := fi.Header.(*tar.Header)
		if hdr == nil {
			return errNotStreamed
		}
		if sm == nil {
			if name != "manifest.json" || hdr.Typeflag != tar.TypeReg {
				return errNotStreamed
			}
			rc, err := fi.Open()
			if err != nil {
				return err
			}
			defer rc.Close()
			sm, err = spoolManifest(rc, tmpDir)
			return err
		}
		if name == "RESTORE.md" && hdr.Typeflag == tar.TypeReg && !restoreMD {
			restoreMD = true
			return nil
		}
		if CheckEntry(hdr) != nil {
			return errNotStreamed
		}
		if d, ok := sm.dumps[name]; ok {
			if dumpsSeen[name] || hdr.Typeflag != tar.TypeReg {
				return errNotStreamed
			}
			dumpsSeen[name] = true
			rc, err := fi.Open()
			if err != nil {
				return err
			}
			defer rc.Close()
			h := sha256.New()
			if _, err := sm.kinds[d.Component].VerifyDump(io.TeeReader(rc, h)); err != nil {
				return errNotStreamed
			}
			if _, err := io.CopyBuffer(h, rc, buf); err != nil {
				return err
			}
			if hex.EncodeToString(h.Sum(nil)) != d.SHA256 {
				return errNotStreamed
			}
			return nil
		}
		// The next entry of the manifest, and only it: an entry missing,
		// twice, extra or out of order is a different name here.
		e, err := sm.files.next()
		if err != nil || e.Name() != name {
			return errNotStreamed
		}
		if sameKind(*e, fi) != nil {
			return errNotStreamed
		}
		if e.Type == "hardlink" {
			// planStream checked the target is an earlier regular file of
			// the same component in the manifest, whose entries the
			// archive holds in the same order: it came before.
			return nil
		}
		if sameMeta(*e, hdr) != nil {
			return errNotStreamed
		}
		if e.Type != "file" {
			return nil
		}
		rc, err := fi.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		if e.Size >= asyncSumMin {
			// Hashed on another core while the archive is decoded on.
			n, err := sums.check(rc, buf, e.SHA256)
			if err != nil {
				return err
			}
			if n != e.Size {
				return errNotStreamed
			}
			return nil
		}
		h := sha256.New()
		n, err := io.CopyBuffer(h, rc, buf)
		if err != nil {
			return err
		}
		if hex.EncodeToString(h.Sum(nil)) != e.SHA256 || n != e.Size {
			return errNotStreamed
		}
		return nil
	})
	if err == nil {
		_, err = io.Copy(whole, f)
	}
	if !sums.wait() && err == nil {
		err = errNotStreamed // a file's content does not match its digest
	}
	var got string
	if plainSum != nil {
		got = plainSum.Sum()
	}
	if err != nil {
		return "", err
	}
	if rs != nil {
		// Only a sidecar over the ciphertext passes here; the sidecar
		// over the plaintext of earlier releases is Check's.
		if got, err = rs.RawSHA256(); err != nil {
			return "", err
		}
	}
	if sm == nil {
		return "", errNotStreamed
	}
	if sm.planned() != nil {
		return "", errNotStreamed // the manifest is not one it can vouch for
	}
	if _, err := sm.files.next(); err != io.EOF {
		return "", errNotStreamed // an entry of the manifest is missing
	}
	if len(dumpsSeen) != len(sm.dumps) {
		return "", errNotStreamed
	}
	if checkStreamHook != nil {
		checkStreamHook()
	}
	return got, nil
}

// asyncSumMin is the size from which checkStream hashes a file's content
// on another goroutine (fileSums); smaller files are hashed in line,
// where handing them over would cost more than hashing them.
var asyncSumMin int64 = 256 << 10

// fileSums hashes the content of files on other goroutines, at most
// fileSumsInFlight at once (each holds a few buffers: asynchash), while
// the caller decodes the archive on; wait says whether every digest
// matched.
type fileSums struct {
	sem chan struct{}
	wg  sync.WaitGroup
	bad atomic.Bool
}

const fileSumsInFlight = 2

// check reads r to its end into a hash computed on another goroutine,
// whose digest is compared with want there; it returns the bytes read.
func (s *fileSums) check(r io.Reader, buf []byte, want string) (int64, error) {
	if s.sem == nil {
		s.sem = make(chan struct{}, fileSumsInFlight)
	}
	s.sem <- struct{}{}
	h := asynchash.New()
	n, err := io.CopyBuffer(h, r, buf)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if h.Sum() != want {
			s.bad.Store(true)
		}
		<-s.sem
	}()
	return n, err
}

// wait waits for every hash and says whether each digest matched.
func (s *fileSums) wait() bool {
	s.wg.Wait()
	return !s.bad.Load()
}

// spooledManifest is manifest.json on disk, checked, with its file
// entries read again one at a time.
type spooledManifest struct {
	f     *os.File
	head  *Manifest // every key but the file entries
	dumps map[string]DumpEntry
	kinds map[string]kind.Kind
	files *manifestDecoder
	// plan receives the verdict of planStream's checks of every file
	// entry, made on another goroutine while the archive is compared
	// with files (planned).
	plan      chan error
	planErr   error
	planKnown bool
}

// planned waits for the checks of every file entry and returns their
// verdict.
func (s *spooledManifest) planned() error {
	if !s.planKnown {
		s.planErr, s.planKnown = <-s.plan, true
	}
	return s.planErr
}

func (s *spooledManifest) close() {
	s.planned()
	s.f.Close()
}

// spoolManifest copies manifest.json from r to an unlinked temporary file,
// reads it through once for its head and the targets of its hard links,
// once more to check it (planStream; on another goroutine, whose verdict
// planned returns), and opens it a third time for the comparison with
// the archive.
func spoolManifest(r io.Reader, tmpDir string) (*spooledManifest, error) {
	f, err := os.CreateTemp(tmpDir, "fleetsafe-manifest-*.json")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	s := &spooledManifest{f: f}
	size, err := io.Copy(f, r)
	if err != nil {
		f.Close()
		return nil, err
	}
	read := func() *manifestDecoder { return newManifestDecoder(io.NewSectionReader(f, 0, size)) }
	// First pass: the head (components and databases may follow the
	// files) and the names hard links point to.
	d := read()
	targets := map[string]bool{}
	for {
		e, err := d.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return nil, errNotStreamed
		}
		if e.Type == "hardlink" {
			targets[e.Target()] = true
		}
	}
	if d.folded || len(d.m.Files) > 0 {
		f.Close()
		return nil, errNotStreamed
	}
	s.head = d.m
	p, err := newStreamPlanner(s.head, targets)
	if err != nil {
		f.Close()
		return nil, err
	}
	// The comparison reads p.dumps and p.kinds, which p.add only reads.
	s.plan = make(chan error, 1)
	go func(d *manifestDecoder) {
		for {
			e, err := d.next()
			if err == io.EOF {
				break
			}
			if err != nil || p.add(e) != nil {
				s.plan <- errNotStreamed
				return
			}
		}
		s.plan <- p.finish()
	}(read())
	s.dumps, s.kinds, s.files = p.dumps, p.kinds, read()
	return s, nil
}

// streamPlanner applies planManifest's checks to the file entries one at a
// time, in the order fleetsafe writes them (planStream): its memory is the
// components, the open directories of the current one, and the targets of
// hard links.
type streamPlanner struct {
	comps   map[string]ManifestComponent
	kinds   map[string]kind.Kind
	dumps   map[string]DumpEntry
	m       *Manifest
	tops    map[string]int
	done    map[string]bool
	targets map[string]bool
	// found maps each hard link target met as a regular file to its
	// component.
	found map[string]string
	cur   string   // the component of the previous entry
	prev  string   // the previous entry's name
	open  []string // the directories of cur enclosing prev, outermost first
}

func newStreamPlanner(m *Manifest, targets map[string]bool) (*streamPlanner, error) {
	p := &streamPlanner{comps: map[string]ManifestComponent{}, kinds: map[string]kind.Kind{}, dumps: map[string]DumpEntry{},
		m: m, tops: map[string]int{}, done: map[string]bool{}, targets: targets, found: map[string]string{}}
	for _, c := range m.Components {
		if c.Name == "" || strings.ContainsAny(c.Name, "/\x00") || c.Name == "." || c.Name == ".." {
			return nil, errNotStreamed
		}
		if _, dup := p.comps[c.Name]; dup {
			return nil, errNotStreamed
		}
		k, known := kind.Lookup(c.Type)
		if !known {
			return nil, errNotStreamed
		}
		p.kinds[c.Name] = k
		want := ""
		if c.Present {
			switch k.Shape() {
			case kind.TreeDir, kind.TreeFile:
				want = "components/" + c.Name
			case kind.Dump:
				want = "components/" + c.Name + k.DumpExt()
			}
		}
		if c.ArchivePath != want {
			return nil, errNotStreamed
		}
		p.comps[c.Name] = c
	}
	for _, d := range m.Databases {
		c, ok := p.comps[d.Component]
		if !ok || ShapeOf(c.Type) != kind.Dump || c.ArchivePath != d.Path {
			return nil, errNotStreamed
		}
		if _, dup := p.dumps[d.Path]; dup {
			return nil, errNotStreamed
		}
		p.dumps[d.Path] = d
	}
	for _, c := range m.Components {
		if ShapeOf(c.Type) == kind.Dump && c.ArchivePath != "" {
			if _, ok := p.dumps[c.ArchivePath]; !ok {
				return nil, errNotStreamed
			}
		}
	}
	return p, nil
}

// walkLess orders names as a walk lists them: path element by element,
// each compared byte by byte, a directory before its contents. It is the
// byte order with '/' below every other byte.
func walkLess(a, b string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := int(a[i])+1, int(b[i])+1
		if a[i] == '/' {
			x = 0
		}
		if b[i] == '/' {
			y = 0
		}
		if x != y {
			return x < y
		}
	}
	return len(a) < len(b)
}

// add checks one file entry, as planManifest does for files[i], given
// the entries before it.
func (p *streamPlanner) add(e *FileEntry) error {
	name := e.Name()
	if CheckName(name) != "" {
		return errNotStreamed
	}
	c, ok := p.comps[e.Component]
	if !ok || c.ArchivePath == "" || !ShapeOf(c.Type).IsTree() {
		return errNotStreamed
	}
	// Each component's entries together, each name after the one
	// before it: no name twice.
	if e.Component != p.cur {
		if p.done[e.Component] {
			return errNotStreamed
		}
		p.done[p.cur] = true
		p.cur, p.open = e.Component, p.open[:0]
	} else if !walkLess(p.prev, name) {
		return errNotStreamed
	}
	p.prev = name
	if _, clash := p.dumps[name]; clash {
		return errNotStreamed
	}
	prefix := c.ArchivePath
	rest, under := strings.CutPrefix(name, prefix+"/")
	switch {
	case name == prefix:
		if ShapeOf(c.Type) != kind.TreeDir || e.Type != "dir" {
			return errNotStreamed
		}
		p.tops[c.Name]++
	case !under || rest == "":
		return errNotStreamed
	case ShapeOf(c.Type) == kind.TreeFile:
		if strings.Contains(rest, "/") || e.Type != "file" {
			return errNotStreamed
		}
		p.tops[c.Name]++
	default:
		// In walk order an earlier directory of the same component that
		// encloses this name encloses every name between them: it is
		// still open.
		for len(p.open) > 0 && !strings.HasPrefix(name, p.open[len(p.open)-1]+"/") {
			p.open = p.open[:len(p.open)-1]
		}
		if len(p.open) == 0 || p.open[len(p.open)-1] != path.Dir(name) {
			return errNotStreamed
		}
	}
	switch e.Type {
	case "dir":
		p.open = append(p.open, name)
	case "file":
		if p.targets[name] {
			p.found[name] = e.Component
		}
	case "symlink":
	case "hardlink":
		if comp, ok := p.found[e.Target()]; !ok || comp != e.Component {
			return errNotStreamed
		}
	default:
		return errNotStreamed
	}
	return nil
}

// finish applies the checks that need every entry: one top entry per
// component.
func (p *streamPlanner) finish() error {
	for _, c := range p.m.Components {
		if ShapeOf(c.Type).IsTree() && c.ArchivePath != "" && p.tops[c.Name] != 1 {
			return errNotStreamed
		}
	}
	return nil
}
