package backup

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
)

// plainDumpMarker ends every complete plain-format pg_dump.
const plainDumpMarker = "-- PostgreSQL database dump complete"

// dataState says whether a dump holds table data.
type dataState int

const (
	dataUnknown dataState = iota // not a dump, or not read to its end
	dataNone                     // a dump without any table data
	dataSome                     // a dump with table data
)

// fileResult is what one read of a backup file tells.
type fileResult struct {
	checksum Finding // nil when fine or not asked
	format   Finding // nil when fine
	checked  bool    // format was checked (not "any" of an unknown kind)
	// kind is what the file was recognised as ("gzip pg_plain", ...).
	kind string
	// database is the database named in a pg_custom dump's header.
	database string
	data     dataState
	// walkErr is the error of a TarWalk that stopped for its own reasons
	// (not the stream's): the checks after it were not made.
	walkErr error
}

// ReadSidecar returns the digest in file's sha256sum sidecar.
func ReadSidecar(file string) (string, error) { return sidecar.Read(file) }

// Magic numbers of the formats recognised by content.
var (
	magicGzip   = []byte{0x1f, 0x8b}
	magicZstd   = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicCustom = []byte("PGDMP")
	magicZip    = []byte("PK\x03\x04")
	magicZipEnd = []byte("PK\x05\x06")
	plainHeader = []byte("-- PostgreSQL database dump")
)

// sniff names the format of a stream from its first bytes: pg_custom,
// gzip, zstd, zip, tar, pg_plain, or "" when unknown.
func sniff(head []byte) string {
	switch {
	case bytes.HasPrefix(head, magicCustom):
		return "pg_custom"
	case bytes.HasPrefix(head, magicGzip):
		return "gzip"
	case bytes.HasPrefix(head, magicZstd):
		return "zstd"
	case bytes.HasPrefix(head, magicZip), bytes.HasPrefix(head, magicZipEnd):
		return "zip"
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return "tar"
	case bytes.Contains(head, plainHeader):
		return "pg_plain"
	}
	return ""
}

func newZstd(r io.Reader) (*zstd.Decoder, error) {
	// Windows up to 256 MiB (zstd --long=28); a larger one is a failed
	// format check, never an unbounded allocation.
	return zstd.NewReader(r, zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxWindow(256<<20), zstd.WithDecoderMaxMemory(512<<20))
}

// decompress reads a gzip or zstd stream through fn and then to its end,
// so that its checksum is verified; other kinds go to fn as they are.
func decompress(kind string, r io.Reader, fn func(io.Reader) error) error {
	switch kind {
	case "gzip":
		gz, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		if err := fn(gz); err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, gz)
		return err
	case "zstd":
		zr, err := newZstd(r)
		if err != nil {
			return err
		}
		defer zr.Close()
		if err := fn(zr); err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, zr)
		return err
	}
	return fn(r)
}

// peek returns up to n first bytes of r without consuming them.
func peek(r *bufio.Reader, n int) []byte {
	head, _ := r.Peek(n)
	return head
}

// checkFile reads path once: the sha256 (when checksum is asked) and the
// format check share the read.
func checkFile(path, format string, checksum bool) (fileResult, error) {
	return checkFileFrom(context.Background(), nil, path, path, format, checksum)
}

// checkBackup is checkFile for a file or an object (path s3://bucket/key,
// read through rem).
func checkBackup(ctx context.Context, rem *remotes, path, format string, checksum bool) (fileResult, error) {
	return checkFileFrom(ctx, rem, path, path, format, checksum)
}

// checkFileFrom is checkFile reading the content from content (an open
// descriptor's /proc path, so that the file checked is the file a restore
// then reads; or the object, streaming, when it is s3://bucket/key), the
// sidecar and the names from path (a sidecar object beside an object).
func checkFileFrom(ctx context.Context, rem *remotes, path, content, format string, checksum bool) (fileResult, error) {
	return checkFileWalk(ctx, rem, path, content, format, checksum, nil)
}

// Staging says how a restore stages a backup in the same read as its
// content checks (JudgeContent).
type Staging struct {
	// Tar, for a tar, tar_gz or tar_zst backup, reads the tar stream in
	// place of the format check's own walk (the restore extracts it).
	Tar TarWalk
	// PGRestore says a pg_custom dump is loaded by pg_restore at the
	// same time: pg_restore inflates every data block and fails on a
	// corrupted one, so the format check walks every block
	// (pgdump.VerifyFraming) without inflating all of it again.
	PGRestore bool
}

// TarWalk reads a tar stream in place of the format check's own walk:
// it is given the stream of a tar, tar_gz or tar_zst backup as the check
// reads it (through the checksum and the decompression), and must read
// every entry to the end (Next returning io.EOF) unless it fails. What
// the stream itself gives wrong (a read, a header, a truncation) is the
// format check's finding, whatever the walk returns.
type TarWalk func(tr *TarReader) error

// errWalk stands for a TarWalk's own error on its way out of decompress.
var errWalk = errors.New("the tar walk stopped")

// checkFileWalk is checkFileFrom reading the content as st says, when
// not nil.
func checkFileWalk(ctx context.Context, rem *remotes, path, content, format string, checksum bool, st *Staging) (fileResult, error) {
	var res fileResult
	var walk TarWalk
	verify := pgdump.Verify
	if st != nil {
		walk = st.Tar
		if st.PGRestore && format == FormatPGCustom {
			verify = pgdump.VerifyFraming
		}
	}
	var want string
	if checksum {
		var err error
		if isRemote(path) {
			want, err = rem.readSidecar(ctx, path)
		} else {
			want, err = ReadSidecar(path)
		}
		if err != nil {
			res.checksum = &ChecksumError{Path: path, Msg: err.Error()}
			checksum = false
		}
	}
	// f is the local file (nil for an object); body is what is read.
	var f *os.File
	var body io.ReadCloser
	if isRemote(content) {
		rc, err := rem.open(ctx, content)
		if err != nil {
			return res, fmt.Errorf("open backup: %w", err)
		}
		body = rc
	} else {
		lf, err := os.Open(content)
		if err != nil {
			return res, fmt.Errorf("open backup: %w", err)
		}
		f, body = lf, lf
	}
	defer func() { body.Close() }()
	// zipAt opens the content for random access (a zip's directory is at
	// its end).
	zipAt := func() error {
		if f != nil {
			st, err := f.Stat()
			if err != nil {
				return err
			}
			return checkZip(f, st.Size())
		}
		ra, size, err := rem.readerAt(ctx, content)
		if err != nil {
			return err
		}
		defer ra.Close()
		return checkZip(ra, size)
	}
	h := sha256.New()
	br := bufio.NewReaderSize(body, 1<<20)
	var src io.Reader = br
	if checksum {
		src = io.TeeReader(br, h)
	}
	custom := func(r io.Reader) error {
		sum, err := verify(r)
		if sum != nil {
			res.database = sum.Database
			res.data = dataNone
			if sum.DataBytes > 0 {
				res.data = dataSome
			}
		}
		return err
	}
	plain := func(r io.Reader) error {
		has, err := checkPlainDump(r)
		if err == nil {
			res.data = dataNone
			if has {
				res.data = dataSome
			}
		}
		return err
	}
	tarCheck := readTar
	if walk != nil {
		tarCheck = func(r io.Reader) error {
			tr := NewTarReader(r)
			werr := walk(tr)
			if serr := tr.Err(); serr != nil {
				return fmt.Errorf("after %d entries: %w", tr.Entries(), serr)
			}
			if werr != nil {
				res.walkErr = werr
				return errWalk
			}
			switch _, err := tr.Next(); {
			case err == nil:
				return fmt.Errorf("after %d entries: the walk stopped before the end of the stream", tr.Entries())
			case err != io.EOF:
				return fmt.Errorf("after %d entries: %w", tr.Entries(), err)
			case tr.Entries() == 0:
				return errors.New("no entries")
			}
			return nil
		}
	}
	var ferr error
	res.checked = true
	res.kind = format
	switch format {
	case "pg_custom":
		if fi, err := statRegular(f); err == nil && fi {
			// A local file is read by position (each inflater reads its
			// own table's data: pgdump.Verify), its checksum by another
			// reader of the whole file at the same time.
			var hashed chan error
			if checksum {
				hashed = make(chan error, 1)
				go func() {
					_, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62))
					hashed <- err
				}()
			}
			ferr = custom(f)
			if checksum {
				if err := <-hashed; err != nil {
					return res, fmt.Errorf("read backup: %w", err)
				}
			}
			src = strings.NewReader("") // all read: nothing left for the sum
			break
		}
		ferr = custom(src)
	case "pg_plain":
		// Plain SQL, or plain SQL compressed with gzip or zstd (.sql.gz,
		// .sql.zst), told apart by magic bytes, never by the name.
		kind := sniff(peek(br, 4))
		if kind == "gzip" || kind == "zstd" {
			res.kind = kind + " pg_plain"
		} else {
			kind = ""
		}
		ferr = decompress(kind, src, plain)
	case "tar":
		ferr = tarCheck(src)
	case "tar_gz":
		ferr = decompress("gzip", src, tarCheck)
	case "tar_zst":
		ferr = decompress("zstd", src, tarCheck)
	case "zip":
		ferr = zipAt()
	case "any":
		// Recognised by content: a known format is read to its end like
		// the format of that name; an unknown one is not checked.
		kind := sniff(peek(br, 4096))
		switch kind {
		case "pg_custom":
			ferr = custom(src)
		case "pg_plain":
			ferr = plain(src)
		case "tar":
			ferr = readTar(src)
		case "zip":
			ferr = zipAt()
		case "gzip", "zstd":
			ferr = decompress(kind, src, func(r io.Reader) error {
				inner := bufio.NewReaderSize(r, 64<<10)
				switch k := sniff(peek(inner, 4096)); k {
				case "tar":
					res.kind = kind + " tar"
					return readTar(inner)
				case "pg_plain":
					res.kind = kind + " pg_plain"
					return plain(inner)
				case "pg_custom":
					res.kind = kind + " pg_custom"
					return custom(inner)
				default:
					res.kind = kind
					_, err := io.Copy(io.Discard, inner)
					return err
				}
			})
		default:
			res.checked = false
			res.kind = ""
		}
		if kind != "gzip" && kind != "zstd" && kind != "" {
			res.kind = kind
		}
	default:
		// Formats registered by their own files (registerFormat).
		if fc, found := formatChecks[format]; found {
			ferr = fc(f, br, src, &res)
		}
	}
	if res.walkErr != nil {
		return res, nil
	}
	if ferr != nil {
		var pe *os.PathError
		if errors.As(ferr, &pe) && !errors.Is(ferr, io.ErrUnexpectedEOF) {
			return res, fmt.Errorf("read backup: %w", ferr)
		}
		res.format = &FormatError{Path: path, Format: format, Msg: ferr.Error()}
		res.data = dataUnknown
	}
	if checksum {
		// Whatever the format reader left unread still counts.
		if res.kind == "zip" {
			// The zip was read by ranges: the sum reads it again, whole
			// (only what the sum had not seen yet was left).
			h.Reset()
			if f != nil {
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					return res, err
				}
			} else {
				rc, err := rem.open(ctx, content)
				if err != nil {
					return res, fmt.Errorf("read backup: %w", err)
				}
				body.Close()
				body = rc
			}
			src = io.TeeReader(bufio.NewReaderSize(body, 1<<20), h)
		}
		if _, err := io.Copy(io.Discard, src); err != nil {
			return res, fmt.Errorf("read backup: %w", err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			res.checksum = &ChecksumError{Path: path, Want: want, Got: got}
		}
	}
	return res, nil
}

// readTar reads every entry of a tar stream to its end.
func readTar(r io.Reader) error {
	tr := NewTarReader(r)
	n := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return errors.New("no entries")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("after %d entries: %w", n, err)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return fmt.Errorf("entry %s: %w", hdr.Name, err)
		}
		n++
	}
}

// checkZip reads the central directory and every entry, so that each
// entry's CRC-32 is checked.
func checkZip(f io.ReaderAt, size int64) error {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return err
	}
	if len(zr.File) == 0 {
		return errors.New("no entries")
	}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("entry %s: %w", zf.Name, err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("entry %s: %w", zf.Name, err)
		}
	}
	return nil
}

// checkPlainDump reads a plain-format dump to its end and requires the
// completion marker, followed only by blank lines, comments and the
// \unrestrict line that recent pg_dump releases add. It also tells
// whether the dump holds table data: a COPY block with at least one row,
// or an INSERT statement (pg_dump --inserts).
func checkPlainDump(r io.Reader) (hasData bool, err error) {
	const tail = 4096
	buf := make([]byte, 0, 2*tail)
	br := bufio.NewReaderSize(r, 64<<10)
	seen := false
	atStart := true      // the next segment starts a line
	copyLine := false    // the current line starts with "COPY "
	pendingCopy := false // the previous line was COPY ... FROM stdin;
	var end []byte       // the last bytes of the current line
	for {
		seg, rerr := br.ReadSlice('\n')
		if len(seg) > 0 {
			seen = true
			data := append(buf, seg...)
			if len(data) > tail {
				data = data[len(data)-tail:]
			}
			buf = append(buf[:0], data...)
			if atStart {
				if pendingCopy && !bytes.HasPrefix(seg, []byte(`\.`)) {
					hasData = true
				}
				pendingCopy = false
				copyLine = bytes.HasPrefix(seg, []byte("COPY "))
				if bytes.HasPrefix(seg, []byte("INSERT INTO ")) {
					hasData = true
				}
				end = end[:0]
			}
			end = append(end, seg...)
			if len(end) > 32 {
				end = append(end[:0], end[len(end)-32:]...)
			}
			atStart = seg[len(seg)-1] == '\n'
			if atStart && copyLine && bytes.HasSuffix(bytes.TrimRight(end, "\r\n"), []byte("FROM stdin;")) {
				pendingCopy = true
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil && !errors.Is(rerr, bufio.ErrBufferFull) {
			return false, rerr
		}
	}
	if !seen {
		return false, errors.New("empty file")
	}
	i := bytes.LastIndex(buf, []byte(plainDumpMarker))
	if i < 0 {
		return false, fmt.Errorf("no %q line at its end: the dump stopped before completion", plainDumpMarker)
	}
	for _, line := range strings.Split(string(buf[i+len(plainDumpMarker):]), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "--" || strings.HasPrefix(line, `\unrestrict `) {
			continue
		}
		return false, fmt.Errorf("unexpected content after the completion marker: %q", line)
	}
	return hasData, nil
}

// statRegular says whether f is an open regular file (false for nil).
func statRegular(f *os.File) (bool, error) {
	if f == nil {
		return false, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	return fi.Mode().IsRegular(), nil
}
