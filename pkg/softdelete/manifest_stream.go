package softdelete

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"

	"github.com/mholt/archives"
)

// encodeManifest writes m as JSON with the entries of srcs as its files,
// one entry at a time, so that a manifest of 200,000 files never sits in
// memory whole. The output is the same as json.Marshal of the full value.
func encodeManifest(w io.Writer, m *Manifest, srcs []*source) error {
	head := *m
	head.Files = nil
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
	for n, s := range srcs {
		if n > 0 {
			bw.WriteByte(',')
		}
		e, err := json.Marshal(s.entry)
		if err != nil {
			return err
		}
		bw.Write(e)
	}
	bw.WriteByte(']')
	bw.Write(b[i+len(key):])
	return bw.Flush()
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// manifestEntry is manifest.json as an archive entry, encoded twice: once
// to learn its size (the tar header comes first), once into the archive.
func manifestEntry(m *Manifest, srcs []*source) (archives.FileInfo, error) {
	var c countWriter
	if err := encodeManifest(&c, m, srcs); err != nil {
		return archives.FileInfo{}, fmt.Errorf("encode manifest: %w", err)
	}
	info := memInfo{name: "manifest.json", size: c.n, mod: m.CreatedAt}
	return archives.FileInfo{FileInfo: info, NameInArchive: "manifest.json", Open: func() (fs.File, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(encodeManifest(pw, m, srcs)) }()
		return pipeFile{PipeReader: pr, info: info}, nil
	}}, nil
}

type pipeFile struct {
	*io.PipeReader
	info memInfo
}

func (p pipeFile) Stat() (fs.FileInfo, error) { return p.info, nil }

// decodeManifest reads manifest.json entry by entry.
func decodeManifest(r io.Reader) (*Manifest, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	m := &Manifest{}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		if key != "files" {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, fmt.Errorf("key %s: %w", key, err)
			}
			if err := json.Unmarshal(append(append([]byte(`{"`+key+`":`), raw...), '}'), m); err != nil {
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
		for dec.More() {
			var e FileEntry
			if err := dec.Decode(&e); err != nil {
				return nil, fmt.Errorf("files[%d]: %w", len(m.Files), err)
			}
			m.Files = append(m.Files, e)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return m, nil
}
