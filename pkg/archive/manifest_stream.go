package archive

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/mholt/archives"
)

// encodeManifest writes m as JSON with the entries of srcs as its files,
// one entry at a time, so that a manifest of 200,000 files never sits in
// memory whole. The output is the same as json.Marshal of the full value.
//
// With m.lossSeq (Collector.Write), the losses list is streamed the same
// way, one loss at a time, in place of m.Losses: the same "losses" key
// with the same entries as json.Marshal would write, omitted when there
// is none (omitempty), so that a reader of format v1 sees no difference.
func encodeManifest(w io.Writer, m *Manifest, srcs sourceSeq) error {
	head := *m
	head.Files = nil
	var placeholder []byte
	if m.lossSeq != nil {
		// One loss no walk makes (a path holding a NUL byte) marks the
		// list's place; its bytes are found and replaced.
		sentinel := []Finding{{Path: "\x00fleetsafe-losses\x00"}}
		head.Losses = sentinel
		var err error
		if placeholder, err = json.Marshal(sentinel); err != nil {
			return err
		}
	}
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}
	// {"format":...,"files":null,...}: split around the files value.
	const key = `"files":null`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return fmt.Errorf("encode manifest: no files key")
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(b[:i])
	bw.WriteString(`"files":[`)
	n := 0
	err = srcs(func(s *source) error {
		if n > 0 {
			bw.WriteByte(',')
		}
		n++
		e, err := json.Marshal(s.entry)
		if err != nil {
			return err
		}
		_, err = bw.Write(e)
		return err
	})
	if err != nil {
		return err
	}
	bw.WriteByte(']')
	rest := b[i+len(key):]
	if placeholder != nil {
		j := bytes.Index(rest, placeholder)
		const lossKey = `"losses":`
		if j < len(lossKey) || string(rest[j-len(lossKey):j]) != lossKey {
			return fmt.Errorf("encode manifest: no losses key")
		}
		before := rest[:j-len(lossKey)]
		if len(before) == 0 || before[len(before)-1] != ',' {
			return fmt.Errorf("encode manifest: no losses key")
		}
		bw.Write(before[:len(before)-1])
		n := 0
		err := m.lossSeq(func(f Finding) error {
			if n == 0 {
				bw.WriteString(`,"losses":[`)
			} else {
				bw.WriteByte(',')
			}
			n++
			e, err := json.Marshal(f)
			if err != nil {
				return err
			}
			_, err = bw.Write(e)
			return err
		})
		if err != nil {
			return err
		}
		if n > 0 {
			bw.WriteByte(']')
		}
		rest = rest[j+len(placeholder):]
	}
	bw.Write(rest)
	return bw.Flush()
}

// manifestEntry is manifest.json as an archive entry, encoded once into
// an unlinked temporary file in dir (the tar header, which comes first,
// needs its size): a manifest of 200,000 files is neither kept in memory
// nor encoded twice. close releases the file.
func manifestEntry(m *Manifest, srcs sourceSeq, dir string) (fi archives.FileInfo, close func(), err error) {
	f, err := os.CreateTemp(dir, "manifest-*.json")
	if err != nil {
		return archives.FileInfo{}, nil, fmt.Errorf("encode manifest: %w", err)
	}
	os.Remove(f.Name())
	if err := encodeManifest(f, m, srcs); err != nil {
		f.Close()
		return archives.FileInfo{}, nil, fmt.Errorf("encode manifest: %w", err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		f.Close()
		return archives.FileInfo{}, nil, fmt.Errorf("encode manifest: %w", err)
	}
	info := memInfo{name: "manifest.json", size: size, mod: m.CreatedAt}
	return archives.FileInfo{FileInfo: info, NameInArchive: "manifest.json", Open: func() (fs.File, error) {
		return spoolFile{SectionReader: io.NewSectionReader(f, 0, size), info: info}, nil
	}}, func() { f.Close() }, nil
}

// spoolFile is a spooled entry, read from its start.
type spoolFile struct {
	*io.SectionReader
	info memInfo
}

func (p spoolFile) Stat() (fs.FileInfo, error) { return p.info, nil }
func (p spoolFile) Close() error               { return nil }

// DecodeManifest reads manifest.json entry by entry.
func DecodeManifest(r io.Reader) (*Manifest, error) {
	d := newManifestDecoder(r)
	d.keepLosses = true
	for {
		e, err := d.next()
		if err == io.EOF {
			return d.m, nil
		}
		if err != nil {
			return nil, err
		}
		d.m.Files = append(d.m.Files, *e)
	}
}

// manifestDecoder reads manifest.json one file entry at a time: next
// returns the entries of its "files" lists in order, and every other key
// is decoded into m as it is met. DecodeManifest keeps them all; the
// streaming check (checkStream) looks at one at a time.
type manifestDecoder struct {
	dec                      *json.Decoder
	m                        *Manifest
	started, inFiles, closed bool
	n                        int
	// folded records a key other than "files" that json.Unmarshal
	// would still match to Files ("Files", "FILES"): its list went into
	// m.Files, not through next.
	folded bool
	// keepLosses keeps the losses list in m.Losses (DecodeManifest).
	// Without it (the streaming check), each loss is decoded, so that a
	// malformed one is still an error, and counted in losses, not kept:
	// an archive of 200,000 accepted losses is checked in bounded memory.
	keepLosses bool
	losses     int
}

func newManifestDecoder(r io.Reader) *manifestDecoder {
	return &manifestDecoder{dec: json.NewDecoder(bufio.NewReaderSize(r, 64<<10)), m: &Manifest{}}
}

// next returns the next file entry, io.EOF once the object is closed.
func (d *manifestDecoder) next() (*FileEntry, error) {
	dec := d.dec
	if !d.started {
		d.started = true
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return nil, fmt.Errorf("not a JSON object")
		}
	}
	for !d.closed {
		if d.inFiles {
			if dec.More() {
				var e FileEntry
				if err := dec.Decode(&e); err != nil {
					return nil, fmt.Errorf("files[%d]: %w", d.n, err)
				}
				d.n++
				return &e, nil
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			d.inFiles = false
			continue
		}
		if !dec.More() {
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			d.closed = true
			break
		}
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		if !d.keepLosses && strings.EqualFold(key, "losses") {
			if err := d.countLosses(key); err != nil {
				return nil, err
			}
			continue
		}
		if key != "files" {
			if strings.EqualFold(key, "files") {
				d.folded = true
			}
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, fmt.Errorf("key %s: %w", key, err)
			}
			if err := json.Unmarshal(append(append([]byte(`{"`+key+`":`), raw...), '}'), d.m); err != nil {
				return nil, fmt.Errorf("key %s: %w", key, err)
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			if t == nil && err == nil {
				continue // "files": null
			}
			return nil, fmt.Errorf("files: expected a list")
		}
		d.inFiles = true
	}
	return nil, io.EOF
}

// countLosses reads a losses list one loss at a time, as json.Unmarshal
// would accept it (null, or a list of objects), and counts them.
func (d *manifestDecoder) countLosses(key string) error {
	dec := d.dec
	t, err := dec.Token()
	if err != nil {
		return fmt.Errorf("key %s: %w", key, err)
	}
	if t == nil {
		d.losses = 0 // "losses": null, as Unmarshal would clear it
		return nil
	}
	if t != json.Delim('[') {
		return fmt.Errorf("key %s: expected a list", key)
	}
	n := 0
	for dec.More() {
		var f Finding
		if err := dec.Decode(&f); err != nil {
			return fmt.Errorf("key %s[%d]: %w", key, n, err)
		}
		n++
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("key %s: %w", key, err)
	}
	d.losses = n
	return nil
}
