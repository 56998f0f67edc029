package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// followedArchive is the read-back check of an archive run while the
// archive is written, on a directory store: checkStreamOf reads the
// store's unnamed file (store.FollowWriter) as it grows, and its verdict
// is known when the writing ends, before the file is committed. It
// passes when checkStreamOf passed over as many bytes as were written;
// the archive's sidecar is then the digest of the bytes it read.
//
// The writer does not hash the archive as well (a fourth sha256 pass,
// the others being the files for the manifest, the archive read back and
// each file read back): the promise is a verified archive as it is in the
// store and a sidecar that sha256sum -c checks, and here the bytes read
// back are the file's bytes. Nothing else writes the file: it has no name
// until Commit links it (another process reaches it only through
// /proc/<pid>/fd, which needs the rights of this process), Write fails
// after End, and its stamp taken at End (size, modification time) is
// compared before and after the link (store.FollowWriter), the inode
// under the key with the file written. The reader reads the file itself
// (pread), every byte from the first to the size written. A difference
// between the bytes written and the bytes read would show either in the
// check (the contents, the zstd checksums, the end of the frame and of
// the tar) or, if the bytes decoded alike, in nothing the store promises:
// the sidecar is the digest of the archive as stored, and that archive
// was verified. The changes after the commit that the read-back after it
// used to see are caught by the file's stamp (Unchanged), which sends the
// archive to that read-back.
//
// Anything else falls back to the check after the commit (verifyWritten),
// whose verdict and error are today's, with a sidecar hashed from the
// file before its commit.
type followedArchive struct {
	w    *store.FollowWriter
	done chan struct{}
	sum  string
	n    int64
	err  error
}

// followArchiveHook, when set (tests), runs once the followed check
// passed, before the archive is committed.
var followArchiveHook func(w *store.FollowWriter)

// createArchive creates the archive's object under key: read back while
// written when st is a directory store and nothing reports progress (the
// phases archive and verify are reported one after the other), otherwise
// a plain store.Writer and a nil *followedArchive.
func createArchive(ctx context.Context, st store.Store, key, work string) (store.Writer, *followedArchive, error) {
	fst, ok := st.(store.Follower)
	if !ok || progressFunc(ctx) != nil {
		out, err := st.Create(ctx, key)
		return out, nil, err
	}
	w, err := fst.CreateFollowed(ctx, key)
	if errors.Is(err, store.ErrNoUnnamedFiles) {
		out, err := st.Create(ctx, key)
		return out, nil, err
	}
	if err != nil {
		return nil, nil, err
	}
	fa := &followedArchive{w: w, done: make(chan struct{})}
	go func() {
		defer close(fa.done)
		cr := &countingReader{r: w.Reader()}
		fa.sum, fa.err = checkStreamOf(ctx, cr, work)
		fa.n = cr.n
	}()
	return w, fa, nil
}

// passed ends the writing, waits for the check and says whether the
// archive written passed; *digest is then the sha256 of the bytes read,
// and, when it did not pass, of the file read once more (the sidecar the
// check after the commit compares). Nil: false, *digest unchanged.
func (fa *followedArchive) passed(digest *string) (bool, error) {
	if fa == nil {
		return false, nil
	}
	fa.w.End()
	<-fa.done
	if fa.err == nil && fa.n == fa.w.Size() {
		*digest = fa.sum
		if followArchiveHook != nil {
			followArchiveHook(fa.w)
		}
		return true, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, fa.w.Reader()); err != nil {
		return false, err
	}
	*digest = hex.EncodeToString(h.Sum(nil))
	return false, nil
}

// stop waits for the check to end after a failure (Abort fails its
// reads). Nil: nothing.
func (fa *followedArchive) stop() {
	if fa == nil {
		return
	}
	fa.w.Abort()
	<-fa.done
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
