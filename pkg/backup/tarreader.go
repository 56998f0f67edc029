package backup

import (
	"archive/tar"
	"fmt"
	"io"
)

// TruncatedTarError is a tar stream that ends without its end-of-archive
// blocks (two 512-byte blocks of zeros): what a tar killed mid-write
// leaves, even when gzip or zstd closed their own stream properly, or
// what a reader sees of a backup still being written. archive/tar takes a
// clean end of input between two entries for the end of the archive; a
// backup cut there would pass for a whole one.
type TruncatedTarError struct {
	// Entries is how many entries were read before the end.
	Entries int
	// Trailer is how many bytes followed the last entry (0 to 1023, all
	// zeros when the cut fell inside the end-of-archive blocks).
	Trailer int64
}

func (e *TruncatedTarError) Error() string {
	return fmt.Sprintf("truncated: the tar stream ends after %d entries without its end-of-archive blocks (%d of the 1024 zero bytes a complete tar ends with); the tar that wrote it was cut or is still writing", e.Entries, e.Trailer)
}

// Hint tells the operator what to do.
func (e *TruncatedTarError) Hint() string {
	return "this backup is incomplete: use an older one, and check the job that writes it"
}

// TarReader is archive/tar's reader that refuses a stream cut at an entry
// boundary: Next returns io.EOF only after the end-of-archive blocks,
// else a *TruncatedTarError.
type TarReader struct {
	*tar.Reader
	cr      *zeroTail
	entries int
	// err is the first error of the stream itself (its reads, its
	// headers, its end), whatever the caller made of it; done is set
	// once Next returned io.EOF.
	err  error
	done bool
}

// Read reads the current entry, remembering a failure of the stream.
func (t *TarReader) Read(p []byte) (int, error) {
	n, err := t.Reader.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// Err is the first error the stream itself gave (a read, a header, a
// truncation), nil when none: what tells a broken backup from a caller
// that stopped for its own reasons.
func (t *TarReader) Err() error { return t.err }

// Entries is how many entries Next returned.
func (t *TarReader) Entries() int { return t.entries }

// NewTarReader reads the tar stream r.
func NewTarReader(r io.Reader) *TarReader {
	cr := &zeroTail{r: r}
	return &TarReader{Reader: tar.NewReader(cr), cr: cr}
}

// Next advances to the next entry, reading what the caller left of the
// current one.
func (t *TarReader) Next() (*tar.Header, error) {
	if t.done {
		return nil, io.EOF
	}
	hdr, err := t.next()
	if err == io.EOF {
		t.done = true
	} else if err != nil && t.err == nil {
		t.err = err
	}
	return hdr, err
}

func (t *TarReader) next() (*tar.Header, error) {
	if t.entries > 0 {
		if _, err := io.Copy(io.Discard, t.Reader); err != nil {
			return nil, err
		}
	}
	// The next header starts at the next block boundary: the current
	// entry's padding is skipped by tar.Reader.Next.
	start := (t.cr.n + 511) &^ 511
	hdr, err := t.Reader.Next()
	if err == io.EOF {
		end := t.cr.n - start
		if end < 1024 || t.cr.zeros < t.cr.n-start {
			return nil, &TruncatedTarError{Entries: t.entries, Trailer: max(end, 0)}
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	t.entries++
	return hdr, nil
}

// zeroTail counts the bytes read and the run of zero bytes they end with.
type zeroTail struct {
	r     io.Reader
	n     int64
	zeros int64
}

func (z *zeroTail) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	z.n += int64(n)
	i := n
	for i > 0 && p[i-1] == 0 {
		i--
	}
	if i == 0 {
		z.zeros += int64(n)
	} else {
		z.zeros = int64(n - i)
	}
	return n, err
}
