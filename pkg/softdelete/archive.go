package softdelete

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/mholt/archives"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
)

// archiveFormat is tar with PAX headers (nanosecond mtimes, long names)
// compressed with zstd on every core.
var archiveFormat = archives.CompressedArchive{
	// Windows above 64 MiB are refused when reading: fleetsafe writes 8 MiB
	// ones, and a hostile header must not make the reader allocate more.
	Compression: archives.Zstd{DecoderOptions: []zstd.DOption{zstd.WithDecoderMaxWindow(64 << 20), zstd.WithDecoderMaxMemory(256 << 20)}},
	Archival:    archives.Tar{Format: tar.FormatPAX},
	Extraction:  archives.Tar{},
}

// ArchiveInfo describes a written and verified archive.
type ArchiveInfo struct {
	Path      string `json:"path"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
	Files     int    `json:"files"`
	Verified  bool   `json:"verified"`
}

// ChangedFileError is a file whose content changed while it was archived.
type ChangedFileError struct{ Path string }

func (e *ChangedFileError) Error() string {
	return fmt.Sprintf("%s changed while it was archived", e.Path)
}

// Hint tells the operator what to do.
func (e *ChangedFileError) Hint() string {
	return "stop the instance's service (stop_service: true) and run again; nothing was removed"
}

// memInfo is the fs.FileInfo of an entry generated in memory.
type memInfo struct {
	name string
	size int64
	mod  time.Time
}

func (m memInfo) Name() string       { return m.name }
func (m memInfo) Size() int64        { return m.size }
func (m memInfo) Mode() fs.FileMode  { return 0o600 }
func (m memInfo) ModTime() time.Time { return m.mod }
func (m memInfo) IsDir() bool        { return false }
func (m memInfo) Sys() any           { return nil }

type memFile struct {
	*bytes.Reader
	info memInfo
}

func (m memFile) Stat() (fs.FileInfo, error) { return m.info, nil }
func (m memFile) Close() error               { return nil }

func memEntry(name string, data []byte, mod time.Time) archives.FileInfo {
	info := memInfo{name: filepath.Base(name), size: int64(len(data)), mod: mod}
	return archives.FileInfo{FileInfo: info, NameInArchive: name,
		Open: func() (fs.File, error) { return memFile{bytes.NewReader(data), info}, nil }}
}

// dumpFile is a database dump waiting in the work directory.
type dumpFile struct {
	entry DumpEntry
	path  string
}

// writeArchive writes manifest.json, RESTORE.md, every component entry and
// every dump to dest through a temporary file, fsynced and renamed, with a
// sha256sum sidecar whose digest is computed while the archive is written.
// A file whose content changed after the manifest hashed it is caught when
// the archive is read back (VerifyArchive), before anything is removed.
func writeArchive(ctx context.Context, dest string, m *Manifest, runbook []byte, srcs []*source, dumps []dumpFile) (*ArchiveInfo, error) {
	manifest, err := manifestEntry(m, srcs)
	if err != nil {
		return nil, err
	}
	files := []archives.FileInfo{manifest, memEntry("RESTORE.md", runbook, m.CreatedAt)}
	for _, s := range srcs {
		fi := archives.FileInfo{FileInfo: sourceInfo{s}, NameInArchive: s.entry.Name(), LinkTarget: s.entry.Target()}
		if s.entry.Type == "file" {
			fi.Open = func() (fs.File, error) { return s.root.Open(s.rel) }
		}
		files = append(files, fi)
	}
	for _, d := range dumps {
		info, err := os.Stat(d.path)
		if err != nil {
			return nil, fmt.Errorf("dump of %s: %w", d.entry.Database, err)
		}
		files = append(files, archives.FileInfo{FileInfo: info, NameInArchive: d.entry.Path,
			Open: func() (fs.File, error) { return os.Open(d.path) }})
	}

	tmp := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp")
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create archive: %w", err)
	}
	done := false
	defer func() {
		if !done {
			out.Close()
			os.Remove(tmp)
		}
	}()
	sum := newAsyncHash()
	counter := &countingWriter{w: io.MultiWriter(out, sum)}
	err = archiveFormat.Archive(ctx, counter, files)
	digest := sum.Sum()
	if err != nil {
		return nil, fmt.Errorf("write archive %s: %w", dest, err)
	}
	if err := out.Sync(); err != nil {
		return nil, fmt.Errorf("sync archive: %w", err)
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("close archive: %w", err)
	}
	if err := writeFileAtomic(dest+sidecar.Suffix, []byte(sidecar.Format(dest, digest))); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dest); err != nil {
		return nil, fmt.Errorf("rename archive: %w", err)
	}
	done = true
	if err := syncDir(filepath.Dir(dest)); err != nil {
		return nil, err
	}
	return &ArchiveInfo{Path: dest, SHA256: digest, SizeBytes: counter.n, Files: len(srcs)}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// VerifyError is an archive that does not match its manifest or sidecar.
type VerifyError struct {
	Archive string
	// Entry is the archive entry whose content does not match, if any.
	Entry string
	Msg   string
}

func (e *VerifyError) Error() string { return fmt.Sprintf("archive %s: %s", e.Archive, e.Msg) }

// Hint tells the operator what to do.
func (e *VerifyError) Hint() string {
	return "do not rely on this archive; nothing was removed"
}

// VerifyArchive reads an archive back from disk: the sidecar digest, the
// manifest (first entry), every file's checksum and every dump's structure
// to its last data block. It returns the manifest.
func VerifyArchive(ctx context.Context, path string) (*Manifest, error) {
	want, err := sidecar.Read(path)
	if err != nil {
		return nil, &VerifyError{Archive: path, Msg: err.Error()}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	whole := newAsyncHash()
	var m *Manifest
	expect := map[string]*FileEntry{}
	dumps := map[string]DumpEntry{}
	seen := map[string]bool{}
	fail := func(format string, args ...any) error {
		return &VerifyError{Archive: path, Msg: fmt.Sprintf(format, args...)}
	}
	buf := make([]byte, 256<<10)
	err = archiveFormat.Extract(ctx, io.TeeReader(f, whole), func(ctx context.Context, fi archives.FileInfo) error {
		name := fi.NameInArchive
		if m == nil {
			if name != "manifest.json" {
				return fail("first entry is %q, not manifest.json", name)
			}
			rc, err := fi.Open()
			if err != nil {
				return err
			}
			defer rc.Close()
			if m, err = decodeManifest(rc); err != nil {
				return fail("manifest.json: %v", err)
			}
			for i := range m.Files {
				expect[m.Files[i].Name()] = &m.Files[i]
			}
			for _, d := range m.Databases {
				dumps[d.Path] = d
			}
			return nil
		}
		if name == "RESTORE.md" {
			return nil
		}
		if seen[name] {
			return fail("entry %s appears twice", name)
		}
		seen[name] = true
		if d, ok := dumps[name]; ok {
			rc, err := fi.Open()
			if err != nil {
				return err
			}
			defer rc.Close()
			h := sha256.New()
			if _, err := pgdump.Verify(io.TeeReader(rc, h)); err != nil {
				return fail("dump %s: %v", name, err)
			}
			if _, err := io.CopyBuffer(h, rc, buf); err != nil {
				return err
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != d.SHA256 {
				return fail("dump %s: sha256 %s, manifest says %s", name, got, d.SHA256)
			}
			return nil
		}
		e, ok := expect[name]
		if !ok {
			return fail("entry %s is not in the manifest", name)
		}
		if err := sameKind(*e, fi); err != nil {
			return fail("entry %s: %v", name, err)
		}
		if e.Type != "file" {
			return nil
		}
		rc, err := fi.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		h := sha256.New()
		n, err := io.CopyBuffer(h, rc, buf)
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 || n != e.Size {
			return &VerifyError{Archive: path, Entry: name, Msg: fmt.Sprintf("file %s: sha256 %s (%d bytes), manifest says %s (%d bytes): the file changed while it was archived, or the archive is corrupted", name, got, n, e.SHA256, e.Size)}
		}
		return nil
	})
	if err == nil {
		_, err = io.Copy(whole, f)
	}
	got := whole.Sum()
	if err != nil {
		var ve *VerifyError
		if errors.As(err, &ve) {
			return nil, ve
		}
		return nil, fail("unreadable: %v", err)
	}
	if got != want {
		return nil, fail("sha256 %s does not match its sidecar %s", got, want)
	}
	if m == nil {
		return nil, fail("empty archive")
	}
	for p := range expect {
		if !seen[p] {
			return nil, fail("manifest entry %s is missing from the archive", p)
		}
	}
	for p := range dumps {
		if !seen[p] {
			return nil, fail("dump %s is missing from the archive", p)
		}
	}
	return m, nil
}

// sameKind checks that an entry is what the manifest says it is.
func sameKind(e FileEntry, fi archives.FileInfo) error {
	hdr, _ := fi.Header.(*tar.Header)
	if hdr == nil {
		return errors.New("not a tar entry")
	}
	want := map[string]byte{"file": tar.TypeReg, "dir": tar.TypeDir, "symlink": tar.TypeSymlink, "hardlink": tar.TypeLink}[e.Type]
	if hdr.Typeflag != want {
		return fmt.Errorf("type %q in the archive, the manifest says %s", hdr.Typeflag, e.Type)
	}
	if (e.Type == "symlink" || e.Type == "hardlink") && hdr.Linkname != e.Target() {
		return fmt.Errorf("links to %q, the manifest says %q", hdr.Linkname, e.Target())
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file, fsynced
// and renamed, then fsyncs the directory. Mode 0600.
func writeFileAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
