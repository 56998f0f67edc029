package softdelete

import (
	"context"
	"errors"
	"io"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// followedArchive is the read-back check of an archive run while the
// archive is written, on a directory store: checkStreamOf reads the
// store's unnamed file (store.FollowWriter) as it grows, and its verdict
// is known when the writing ends, before the file is committed. It
// passes only when checkStreamOf passed and the digest of what it read
// is the sidecar's (the writer's, of every byte handed to the store) over
// as many bytes as were written: the file nobody else can open is then,
// byte for byte, what was checked, and Commit links that very file under
// the key. Anything else falls back to the check after the commit
// (verifyWritten), whose verdict and error are today's.
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
// archive written, digest over every byte of it, passed. Nil: false.
func (fa *followedArchive) passed(digest string) bool {
	if fa == nil {
		return false
	}
	fa.w.End()
	<-fa.done
	ok := fa.err == nil && fa.sum == digest && fa.n == fa.w.Size()
	if ok && followArchiveHook != nil {
		followArchiveHook(fa.w)
	}
	return ok
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
