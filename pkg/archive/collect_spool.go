package archive

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// The collector's records (one per entry to archive) are not kept in
// memory: each is encoded into a spool as the walk goes, and hashing, the
// manifest, the archive writer and the late-change re-stats read them back
// in walk order, one window at a time. Small instances stay in memory
// (spoolMemMax); larger ones spill into an unlinked file on the shelf's
// filesystem (the archive directory, or the temporary directory for a
// remote store), so that the soft delete's memory does not grow with the
// file count (issue 12).
//
// A record is [4-byte length][1-byte digest flag][32-byte sha256][fields]:
// the digest has a fixed place, so that hashAll can write it in place.

// spoolMemMax is how much of the records stays in memory before the spool
// spills into a file (about 4,000 entries).
var spoolMemMax = 1 << 20

const (
	recHead   = 4      // the length
	recDigest = 1 + 32 // the flag and the sha256
	recFixed  = recHead + recDigest
)

// spool holds the encoded records, in memory or in a file.
type spool struct {
	// create makes the unlinked file a spool spills into.
	create func() (*os.File, error)
	mem    []byte
	f      *os.File
	w      *bufio.Writer
	size   int64
	n      int
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
	}
	s.mem, s.f, s.w = nil, nil, nil
}

// add appends one record.
func (s *spool) add(rec []byte) error {
	if s.f == nil && len(s.mem)+len(rec) > spoolMemMax && s.create != nil {
		f, err := s.create()
		if err != nil {
			return fmt.Errorf("spool the list of files: %w", err)
		}
		s.f, s.w = f, bufio.NewWriterSize(f, 64<<10)
		if _, err := s.w.Write(s.mem); err != nil {
			return s.failed(err)
		}
		s.mem = nil
	}
	if s.f == nil {
		s.mem = append(s.mem, rec...)
	} else if _, err := s.w.Write(rec); err != nil {
		return s.failed(err)
	}
	s.size += int64(len(rec))
	s.n++
	return nil
}

func (s *spool) failed(err error) error {
	return fmt.Errorf("spool the list of files in %s: %w", s.f.Name(), err)
}

// reader returns the records from the first, once every one is added.
func (s *spool) reader() (io.Reader, error) {
	if s.f == nil {
		return bytes.NewReader(s.mem), nil
	}
	if err := s.w.Flush(); err != nil {
		return nil, s.failed(err)
	}
	return bufio.NewReaderSize(io.NewSectionReader(s.f, 0, s.size), 64<<10), nil
}

// setDigest writes the sha256 of the record at off in place.
func (s *spool) setDigest(off int64, hexSum string) error {
	var slot [recDigest]byte
	slot[0] = 1
	if _, err := hex.Decode(slot[1:], []byte(hexSum)); err != nil {
		return fmt.Errorf("spool a sha256: %w", err)
	}
	if s.f == nil {
		copy(s.mem[off+recHead:], slot[:])
		return nil
	}
	if _, err := s.f.WriteAt(slot[:], off+recHead); err != nil {
		return s.failed(err)
	}
	return nil
}

// Kinds of entries in a record.
var recTypes = []string{"dir", "file", "symlink", "hardlink"}

// encodeRecord appends the record of s, whose root is c.roots[root].
func encodeRecord(b []byte, s *source, root int) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	if s.entry.SHA256 != "" {
		b = append(b, 1)
		b, _ = hex.AppendDecode(b, []byte(s.entry.SHA256))
	} else {
		b = append(b, make([]byte, recDigest)...)
	}
	typ := 0
	for i, t := range recTypes {
		if t == s.entry.Type {
			typ = i
		}
	}
	e := &s.entry
	b = append(b, byte(typ))
	b = binary.AppendUvarint(b, uint64(root))
	for _, str := range []string{s.rel, e.Name(), e.Target(), e.SameFileAs, e.Owner, e.Group} {
		b = binary.AppendUvarint(b, uint64(len(str)))
		b = append(b, str...)
	}
	b = binary.AppendUvarint(b, uint64(s.mode))
	b = binary.AppendUvarint(b, uint64(e.Mode))
	b = binary.AppendVarint(b, int64(e.UID))
	b = binary.AppendVarint(b, int64(e.GID))
	b = binary.AppendVarint(b, e.MTime.Unix())
	b = binary.AppendUvarint(b, uint64(e.MTime.Nanosecond()))
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendVarint(b, s.seen.size)
	b = binary.AppendVarint(b, s.seen.mtime)
	b = binary.AppendVarint(b, s.seen.ctime)
	b = binary.AppendUvarint(b, s.seen.ino)
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

var errRecord = errors.New("spooled record damaged")

// recordReader decodes the spool's records in order.
type recordReader struct {
	r     io.Reader
	roots []*os.Root
	comps []string
	buf   []byte
	off   int64
}

// next returns the next record and its offset in the spool, io.EOF after
// the last.
func (rr *recordReader) next() (*source, int64, error) {
	var head [recHead]byte
	if _, err := io.ReadFull(rr.r, head[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = errRecord
		}
		return nil, 0, err
	}
	n := int(binary.LittleEndian.Uint32(head[:]))
	if n < recFixed+1 {
		return nil, 0, errRecord
	}
	if cap(rr.buf) < n-recHead {
		rr.buf = make([]byte, n-recHead)
	}
	b := rr.buf[:n-recHead]
	if _, err := io.ReadFull(rr.r, b); err != nil {
		return nil, 0, errRecord
	}
	off := rr.off
	rr.off += int64(n)
	s, err := rr.decode(b)
	return s, off, err
}

func (rr *recordReader) decode(b []byte) (*source, error) {
	s := &source{}
	if b[0] == 1 {
		s.entry.SHA256 = hex.EncodeToString(b[1:recDigest])
	}
	b = b[recDigest:]
	typ := int(b[0])
	b = b[1:]
	if typ >= len(recTypes) {
		return nil, errRecord
	}
	s.entry.Type = recTypes[typ]
	bad := false
	uv := func() uint64 {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			bad = true
			return 0
		}
		b = b[k:]
		return v
	}
	sv := func() int64 {
		v, k := binary.Varint(b)
		if k <= 0 {
			bad = true
			return 0
		}
		b = b[k:]
		return v
	}
	str := func() string {
		n := uv()
		if bad || n > uint64(len(b)) {
			bad = true
			return ""
		}
		v := string(b[:n])
		b = b[n:]
		return v
	}
	root := uv()
	if bad || root >= uint64(len(rr.roots)) {
		return nil, errRecord
	}
	s.root, s.entry.Component = rr.roots[root], rr.comps[root]
	s.rel = str()
	name, target := str(), str()
	s.entry.setExact(name, target)
	s.entry.SameFileAs, s.entry.Owner, s.entry.Group = str(), str(), str()
	s.mode = fs.FileMode(uv())
	s.entry.Mode = uint32(uv())
	s.entry.UID, s.entry.GID = int(sv()), int(sv())
	sec := sv()
	s.entry.MTime = time.Unix(sec, int64(uv())).UTC()
	s.entry.Size = sv()
	s.seen = stamp{size: sv(), mtime: sv(), ctime: sv(), ino: uv()}
	if bad {
		return nil, errRecord
	}
	return s, nil
}

// records returns a reader of the collector's records from the first.
func (c *Collector) records() (*recordReader, error) {
	if c.spool == nil {
		return nil, fmt.Errorf("the list of files was not kept")
	}
	r, err := c.spool.reader()
	if err != nil {
		return nil, err
	}
	return &recordReader{r: r, roots: c.roots, comps: c.comps}, nil
}

// each calls fn with every record in walk order (and its offset in the
// spool), until fn returns an error.
func (c *Collector) each(fn func(s *source, off int64) error) error {
	rr, err := c.records()
	if err != nil {
		return err
	}
	for {
		s, off, err := rr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read back the list of files: %w", err)
		}
		if err := fn(s, off); err != nil {
			return err
		}
	}
}

// sourceSeq yields sources in walk order until yield returns an error.
type sourceSeq func(yield func(*source) error) error

// seq is the collector's records as a sourceSeq.
func (c *Collector) seq() sourceSeq {
	return func(yield func(*source) error) error {
		return c.each(func(s *source, _ int64) error { return yield(s) })
	}
}

// sliceSeq yields the sources of a list.
func sliceSeq(srcs []*source) sourceSeq {
	return func(yield func(*source) error) error {
		for _, s := range srcs {
			if err := yield(s); err != nil {
				return err
			}
		}
		return nil
	}
}

// sourceList is what an archive holds of the components: the records in
// walk order and their totals, known before the first is read.
type sourceList struct {
	seq     sourceSeq
	entries int   // every entry
	files   int   // regular files
	bytes   int64 // their sizes
}

// list is the collector's records as a sourceList.
func (c *Collector) list() sourceList {
	return sourceList{seq: c.seq(), entries: c.entries, files: c.files, bytes: c.bytes}
}

// Losses lists what the operator accepted to lose (accept_losses) among
// the entries collected so far: the first ListedPerKind of each kind in
// each component, in path order (LossCounts counts them all; the
// archive's manifest lists them all). Call it after Err, which reports a
// failure to keep them.
func (c *Collector) Losses() []Finding {
	c.losses.finish()
	return slices.Clone(c.losses.listed)
}

// LossCounts counts every accepted loss per component and kind, and
// their total.
func (c *Collector) LossCounts() ([]FindingCount, int) {
	c.losses.finish()
	return slices.Clone(c.losses.counts), c.losses.total
}

// eachLoss calls fn with every accepted loss once, in path order then
// kind.
func (c *Collector) eachLoss(fn func(Finding) error) error { return c.losses.each(fn) }

// Totals counts the entries collected and the bytes of their regular
// files.
func (c *Collector) Totals() (entries int, bytes int64) { return c.entries, c.bytes }

// Write writes the archive of the collected components to key of st
// (writeArchive).
//
// The manifest's losses are the collector's, every one, streamed into
// manifest.json (m.Losses is not used): they are never all in memory.
func (c *Collector) Write(ctx context.Context, st store.Store, key string, m *Manifest, runbook []byte, dumps []DumpFile, work string, step func(string)) (*Info, error) {
	if err := c.losses.finish(); err != nil {
		return nil, err
	}
	mm := *m
	mm.Losses, mm.lossSeq = nil, c.eachLoss
	return writeArchive(ctx, st, key, &mm, runbook, c.list(), dumps, work, step)
}

// ExplainVerifyError tells a file that changed during archiving from a
// corrupted archive by hashing the file once more, as restic re-checks a
// failed item.
func (c *Collector) ExplainVerifyError(err error) error {
	srcs := c.seq()
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Entry == "" {
		return err
	}
	var changed error
	srcs(func(s *source) error {
		if s.entry.Path != ve.Entry {
			return nil
		}
		sum, herr := HashFile(nil, s.root, s.rel, make([]byte, 64<<10))
		if herr != nil || sum != s.entry.SHA256 {
			changed = &ChangedFileError{Path: filepath.Join(s.root.Name(), s.rel)}
			return changed
		}
		return nil
	})
	if changed != nil {
		return changed
	}
	return err
}
