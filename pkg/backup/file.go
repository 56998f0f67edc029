package backup

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
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

// fileResult is what one read of a backup file tells.
type fileResult struct {
	checksum Finding // nil when fine or not asked
	format   Finding // nil when fine
	checked  bool    // format was checked (not "any")
}

// ReadSidecar returns the digest in file's sha256sum sidecar.
func ReadSidecar(file string) (string, error) { return sidecar.Read(file) }

// checkFile reads path once: the sha256 (when checksum is asked) and the
// format check share the read.
func checkFile(path, format string, checksum bool) (fileResult, error) {
	var res fileResult
	var want string
	if checksum {
		var err error
		if want, err = ReadSidecar(path); err != nil {
			res.checksum = &ChecksumError{Path: path, Msg: err.Error()}
			checksum = false
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return res, fmt.Errorf("open backup: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	var src io.Reader = bufio.NewReaderSize(f, 1<<20)
	if checksum {
		src = io.TeeReader(src, h)
	}
	var ferr error
	res.checked = format != "any"
	switch format {
	case "pg_custom":
		_, ferr = pgdump.Verify(src)
	case "pg_plain":
		ferr = checkPlainDump(src)
	case "tar":
		ferr = readTar(src)
	case "tar_gz":
		var gz *gzip.Reader
		if gz, ferr = gzip.NewReader(src); ferr == nil {
			ferr = readTar(gz)
			if ferr == nil {
				// Read the rest of the gzip stream so its CRC is checked.
				_, ferr = io.Copy(io.Discard, gz)
			}
		}
	case "tar_zst":
		var zr *zstd.Decoder
		if zr, ferr = zstd.NewReader(src, zstd.WithDecoderConcurrency(1),
			// Windows up to 256 MiB (zstd --long=28); a larger one is a
			// failed format check, never an unbounded allocation.
			zstd.WithDecoderMaxWindow(256<<20), zstd.WithDecoderMaxMemory(512<<20)); ferr == nil {
			ferr = readTar(zr)
			if ferr == nil {
				_, ferr = io.Copy(io.Discard, zr)
			}
			zr.Close()
		}
	case "zip":
		ferr = checkZip(f)
	}
	if ferr != nil {
		var pe *os.PathError
		if errors.As(ferr, &pe) && !errors.Is(ferr, io.ErrUnexpectedEOF) {
			return res, fmt.Errorf("read backup: %w", ferr)
		}
		res.format = &FormatError{Path: path, Format: format, Msg: ferr.Error()}
	}
	if checksum {
		// Whatever the format reader left unread still counts.
		if format == "zip" {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return res, err
			}
			src = io.TeeReader(bufio.NewReaderSize(f, 1<<20), h)
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
	tr := tar.NewReader(r)
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
func checkZip(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	zr, err := zip.NewReader(f, st.Size())
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
// \unrestrict line that recent pg_dump releases add.
func checkPlainDump(r io.Reader) error {
	const tail = 4096
	buf := make([]byte, 0, 2*tail)
	chunk := make([]byte, 256<<10)
	seen := false
	for {
		n, err := r.Read(chunk)
		if n > 0 {
			seen = true
			data := append(buf, chunk[:n]...)
			if len(data) > tail {
				data = data[len(data)-tail:]
			}
			buf = append(buf[:0], data...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if !seen {
		return errors.New("empty file")
	}
	i := bytes.LastIndex(buf, []byte(plainDumpMarker))
	if i < 0 {
		return fmt.Errorf("no %q line at its end: the dump stopped before completion", plainDumpMarker)
	}
	for _, line := range strings.Split(string(buf[i+len(plainDumpMarker):]), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "--" || strings.HasPrefix(line, `\unrestrict `) {
			continue
		}
		return fmt.Errorf("unexpected content after the completion marker: %q", line)
	}
	return nil
}
