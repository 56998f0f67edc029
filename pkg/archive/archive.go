package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/mholt/archives"

	"github.com/fleetsafe/fleetsafe/pkg/asynchash"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Codec is tar with PAX headers (nanosecond mtimes, long names)
// compressed with zstd on every core.
var Codec = archives.CompressedArchive{
	// The encoder's default level (zstd level 3) with the window zstd -3
	// itself uses for large inputs (2 MiB, windowLog 21); releases before
	// 2026-11-27 wrote 8 MiB windows, which read alike.
	// The reader keeps twice the window (WithDecoderLowmem(false)): with
	// the window plus 1 MiB, it moved the whole window down every
	// megabyte it decoded. Windows above 32 MiB are refused when reading
	// (fleetsafe never wrote more than 8 MiB), so that a hostile header
	// makes the reader hold at most 64 MiB of history, as before.
	Compression: archives.Zstd{
		EncoderOptions: []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(archiveWindow)},
		DecoderOptions: []zstd.DOption{zstd.WithDecoderMaxWindow(maxArchiveWindow), zstd.WithDecoderMaxMemory(256 << 20), zstd.WithDecoderLowmem(false)},
	},
	Archival:   archives.Tar{Format: tar.FormatPAX},
	Extraction: archives.Tar{},
}

// archiveWindow is the zstd window of the archives written;
// maxArchiveWindow the largest one read.
const (
	archiveWindow    = 2 << 20
	maxArchiveWindow = 32 << 20
)

// Info describes a written and verified archive.
type Info struct {
	Path      string `json:"path"`
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
	Files     int    `json:"files"`
	Verified  bool   `json:"verified"`
	// StoreChecksum is the store's own checksum of the stored object
	// (S3's x-amz-checksum-sha256, base64; "<sum>-<parts>" after a
	// multipart upload): "" for a directory store.
	StoreChecksum string `json:"store_checksum_sha256,omitempty"`
	// unchanged, for an archive verified before its commit (Verified
	// set by writeArchive), says whether it is still the file committed.
	unchanged func() error
}

// StillAsVerified reports whether an archive verified while it was
// written (Verified by writeArchive) is still, after its commit, the
// very file that was checked (its stamp: device, inode, size, links,
// times). When it is not, the read-back after the commit (VerifyWritten)
// must judge it, as for any other store.
func (i *Info) StillAsVerified() bool {
	return i.Verified && i.unchanged != nil && i.unchanged() == nil
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

// DumpFile is a database dump waiting in the work directory.
type DumpFile struct {
	Entry DumpEntry
	Path  string
}

// writeArchive writes manifest.json (spooled in the work directory work),
// RESTORE.md, every component entry and every dump to key of st through a
// store Writer (nothing is visible under key before it is committed,
// complete), with a sha256sum sidecar over the archive as the store holds
// it (the ciphertext, when the store encrypts). On a directory store the
// archive is read back while it is written (createArchive): when that
// check passes, the archive is committed verified (Info.Verified) and the
// sidecar is the digest of the bytes read back; otherwise the digest is
// computed from the written file before its commit, and the read-back
// after the commit (VerifyWritten) judges it.
// A file whose content changed after the manifest hashed it is caught by
// the read-back, before anything is removed.
//
// step is called after each object ("archive:committed",
// "archive:sidecar"); tests crash the process there.
func writeArchive(ctx context.Context, st store.Store, key string, m *Manifest, runbook []byte, srcs sourceList, dumps []DumpFile, work string, step func(string)) (*Info, error) {
	manifest, closeManifest, err := manifestEntry(m, srcs.seq, work)
	if err != nil {
		return nil, err
	}
	defer closeManifest()
	head := []archives.FileInfo{manifest, memEntry("RESTORE.md", runbook, m.CreatedAt)}
	var tail []archives.FileInfo
	for _, d := range dumps {
		info, err := os.Stat(d.Path)
		if err != nil {
			return nil, fmt.Errorf("dump of %s: %w", d.Entry.Database, err)
		}
		tail = append(tail, archives.FileInfo{FileInfo: info, NameInArchive: d.Entry.Path,
			Open: func() (fs.File, error) { return os.Open(d.Path) }})
	}
	total, n := srcs.bytes, srcs.files
	for _, f := range append(head, tail...) {
		total += f.Size()
		n++
	}
	meter := fileMeter(ctx, total, n)
	// The tar writer opens the files one after the other, in walk order,
	// as their records are read back (never all in memory).
	var dh dirHandle
	defer dh.close()
	files := func(yield func(archives.FileInfo) error) error {
		for _, f := range head {
			if err := yield(meter(f)); err != nil {
				return err
			}
		}
		err := srcs.seq(func(s *source) error {
			fi := archives.FileInfo{FileInfo: sourceInfo{s}, NameInArchive: s.entry.Name(), LinkTarget: s.entry.Target()}
			if s.entry.Type == "file" {
				// O_NONBLOCK: a file swapped for a FIFO meanwhile is not
				// waited on (it reads short, which is refused), and Go does
				// not toggle the flag around its poller registration (four
				// fcntl calls a file).
				fi.Open = func() (fs.File, error) {
					return dh.openFile(s.root, s.rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC)
				}
			}
			return yield(meter(fi))
		})
		if err != nil {
			return err
		}
		for _, f := range tail {
			if err := yield(meter(f)); err != nil {
				return err
			}
		}
		return nil
	}

	dest := st.Location(key)
	out, followed, err := createArchive(ctx, st, key, work)
	if err != nil {
		return nil, fmt.Errorf("create archive: %w", err)
	}
	defer out.Abort() // a no-op once committed
	// An encrypted archive's sidecar is over the ciphertext, the object
	// as stored, which its writer hashes (pkg/store/encrypted: Seal):
	// sha256sum checks it without the key. The plaintext is authenticated
	// by age and checked against the manifest when read back; it is not
	// hashed whole.
	sealer, encrypted := out.(interface{ Seal() (string, error) })
	var sum *asynchash.Hash
	w := io.Writer(out)
	if !encrypted && followed == nil {
		sum = asynchash.New()
		w = io.MultiWriter(out, sum)
	}
	counter := &countingWriter{w: w}
	err = writeTar(ctx, counter, files)
	var digest string
	if sum != nil {
		digest = sum.Sum()
	}
	if err != nil {
		followed.stop()
		var short *shortReadError
		if errors.As(err, &short) {
			var changed *ChangedFileError
			found := errors.New("found")
			_ = srcs.seq(func(s *source) error {
				if s.entry.Name() == short.Name {
					changed = &ChangedFileError{Path: filepath.Join(s.root.Name(), s.rel)}
					return found
				}
				return nil
			})
			if changed != nil {
				return nil, fmt.Errorf("write archive %s: %v: %w", dest, err, changed)
			}
		}
		return nil, fmt.Errorf("write archive %s: %w", dest, err)
	}
	if encrypted {
		if digest, err = sealer.Seal(); err != nil {
			return nil, fmt.Errorf("write archive %s: %w", dest, err)
		}
	}
	verified, err := followed.passed(&digest)
	if err != nil {
		return nil, fmt.Errorf("write archive %s: %w", dest, err)
	}
	// The order of the objects is what a crash may leave: the archive
	// first (its commit is atomic: before it nothing is visible under its
	// key), then its sidecar, then RESTORE.md beside it, last: a runbook
	// in the store always has its archive and sidecar beside it, so that
	// nobody reading the store by hand is sent to an archive that was
	// never written. A crash between them leaves an archive without its
	// sidecar or runbook, which the next run finds through its tombstone
	// (state archiving) and removes; orphans left by older versions or by
	// a failed clean-up are found by sweepOrphans.
	if err := out.Commit(ctx); err != nil {
		return nil, fmt.Errorf("archive %s: %w", dest, err)
	}
	step("archive:committed")
	if err := st.Put(ctx, key+sidecar.Suffix, []byte(sidecar.Format(dest, digest))); err != nil {
		return nil, err
	}
	step("archive:sidecar")
	if err := putStoreRunbook(ctx, st, key, digest, m); err != nil {
		return nil, err
	}
	info := &Info{Path: dest, SHA256: digest, SizeBytes: counter.n, Files: srcs.entries, Verified: verified}
	if verified {
		info.unchanged = followed.w.Unchanged
	}
	if c, ok := out.(interface{ Checksum() string }); ok {
		info.StoreChecksum = c.Checksum()
	}
	return info, nil
}

// writeTar writes the files each yields, one at a time (the list is
// never built), as Codec's tar, compressed, to w: the
// headers archives.Tar writes (tar.FileInfoHeader, the name in the
// archive, PAX), each regular file's body copied through one buffer, and
// the end of the tar and of the zstd frame checked, not only written.
// A file that reads shorter than its size is refused.
func writeTar(ctx context.Context, w io.Writer, each func(yield func(archives.FileInfo) error) error) error {
	zw, err := Codec.Compression.OpenWriter(w)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	buf := make([]byte, 256<<10)
	if err := each(func(f archives.FileInfo) error { return writeTarEntry(ctx, tw, f, buf) }); err != nil {
		zw.Close()
		return err
	}
	if err := tw.Close(); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

func writeTarEntry(ctx context.Context, tw *tar.Writer, f archives.FileInfo, buf []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	hdr, err := tar.FileInfoHeader(f, f.LinkTarget)
	if err != nil {
		return fmt.Errorf("file %s: creating header: %w", f.NameInArchive, err)
	}
	hdr.Name = f.NameInArchive
	if hdr.Name == "" {
		hdr.Name = f.Name()
	}
	hdr.Format = tar.FormatPAX
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("file %s: writing header: %w", f.NameInArchive, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	r, err := f.Open()
	if err != nil {
		return fmt.Errorf("file %s: writing data: %w", f.NameInArchive, err)
	}
	defer r.Close()
	// Hide any WriterTo: the buffer is the one given.
	n, err := io.CopyBuffer(tw, io.LimitReader(struct{ io.Reader }{r}, hdr.Size), buf)
	if err != nil {
		return fmt.Errorf("file %s: writing data: %w", f.NameInArchive, err)
	}
	if n != hdr.Size {
		return &shortReadError{Name: f.NameInArchive, Read: n, Size: hdr.Size}
	}
	return nil
}

// shortReadError is a file that read shorter than the size collected:
// it shrank (or was replaced) after it was hashed.
type shortReadError struct {
	Name       string
	Read, Size int64
}

func (e *shortReadError) Error() string {
	return fmt.Sprintf("file %s: %d bytes read, %d expected", e.Name, e.Read, e.Size)
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

// VerifyArchive reads an archive back from disk and applies every check
// that a restore applies before it writes anything (checkArchive): the
// sidecar digest, the manifest (first entry) and its consistency, every
// entry's name, kind, link target and metadata, hard links inside their
// own component, every file's checksum and every dump's structure to its
// last data block. An archive it passes is one Restore accepts. It returns
// the manifest.
func VerifyArchive(ctx context.Context, path string) (*Manifest, error) {
	st, key, err := FileStoreOf(path)
	if err != nil {
		return nil, err
	}
	m, _, err := Check(ctx, st, key)
	return m, err
}
