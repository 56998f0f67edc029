package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// partSum is the SHA-256 of a part: hex to sign the request with (the
// server checks the payload against it), base64 for
// x-amz-checksum-sha256 (the server stores it and combines the parts').
type partSum struct{ hex, b64 string }

func newPartSum(p []byte) partSum {
	h := sha256.Sum256(p)
	return partSum{hex: hex.EncodeToString(h[:]), b64: base64.StdEncoding.EncodeToString(h[:])}
}

// writer streams a new object by multipart upload while it is written:
// each full part is sent while the next one fills, at most Uploads at
// once, so memory stays at about (Uploads+1) parts whatever the size. An
// object smaller than one part goes in one PUT at Commit. Commit
// completes the upload only if no object is under the key
// (If-None-Match: *); until then nothing is visible. Abort, or a crash,
// leaves an incomplete upload at most, which is invisible (AbortUploads
// removes those of a killed run; a bucket lifecycle rule
// AbortIncompleteMultipartUpload does it too).
type writer struct {
	s        *Store
	key, obj string
	ctx      context.Context
	cancel   context.CancelFunc

	buf      []byte
	parts    int // parts started
	uploadID string
	sem      chan struct{}
	free     chan []byte // part buffers sent, for reuse: no garbage per part
	wg       sync.WaitGroup

	mu       sync.Mutex
	done     []minio.CompletePart
	err      error
	size     int64
	finished bool
	checksum string
}

// Create starts a new object under key.
func (s *Store) Create(ctx context.Context, key string) (store.Writer, error) {
	if err := store.CheckKey(key); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &writer{s: s, key: key, obj: s.Object(key), ctx: wctx, cancel: cancel,
		sem: make(chan struct{}, s.uploads), free: make(chan []byte, s.uploads+1)}, nil
}

// partSize returns the size of part n (1-based): the store's, doubled
// every 1000 parts.
func (w *writer) partSize(n int) int64 {
	shift := (n - 1) / 1000
	if shift > 10 {
		shift = 10
	}
	return w.s.partSize << shift
}

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writer) setErr(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *writer) Write(p []byte) (int, error) {
	if w.finished {
		return 0, fmt.Errorf("write %s: already committed or aborted", w.s.Location(w.key))
	}
	n := 0
	for len(p) > 0 {
		if err := w.failed(); err != nil {
			return n, err
		}
		size := int(w.partSize(w.parts + 1))
		if w.buf == nil {
			select {
			case b := <-w.free:
				if cap(b) == size {
					w.buf = b[:0]
				}
			default:
			}
		}
		if w.buf == nil {
			w.buf = make([]byte, 0, size)
		}
		c := min(size-len(w.buf), len(p))
		w.buf = append(w.buf, p[:c]...)
		p, n = p[c:], n+c
		if len(w.buf) == size {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush sends the filled buffer as the next part, starting the multipart
// upload with the first; it waits while Uploads parts are in flight.
func (w *writer) flush() error {
	if w.uploadID == "" {
		id, err := w.s.c.NewMultipartUpload(w.ctx, w.s.bucket, w.obj, minio.PutObjectOptions{
			UserMetadata: map[string]string{"X-Amz-Checksum-Algorithm": "SHA256"}})
		if err != nil {
			err = w.s.fail("start upload of", w.key, err)
			w.setErr(err)
			return err
		}
		w.uploadID = id
	}
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		if err := w.failed(); err != nil {
			return err // the part that failed, not the cancellation it caused
		}
		return w.ctx.Err()
	}
	if err := w.failed(); err != nil {
		<-w.sem
		return err
	}
	w.parts++
	n, part := w.parts, w.buf
	w.buf = nil
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.sem }()
		sum := newPartSum(part)
		op, err := w.s.c.PutObjectPart(w.ctx, w.s.bucket, w.obj, w.uploadID, n, bytes.NewReader(part), int64(len(part)),
			minio.PutObjectPartOptions{CustomHeader: map[string][]string{"X-Amz-Checksum-Sha256": {sum.b64}},
				// The part goes as UNSIGNED-PAYLOAD: its SHA-256 is
				// in the signed x-amz-checksum-sha256 header, which the
				// server checks against the bytes it receives and
				// stores; signing the payload with the same digest
				// (X-Amz-Content-Sha256) made the server hash every
				// byte a second time for nothing. Without this
				// option, over http the client would sign the payload
				// chunk by chunk (streaming signature), a second
				// SHA-256 of every byte on each side. A server that
				// ignored the checksum header would store a part
				// damaged on the way unchecked: the soft delete reads
				// the whole archive back and checks it before
				// anything moves, which catches it.
				DisableContentSha256: true})
		if err != nil {
			// The parts in flight are not cancelled: a request cut
			// while the server still writes its part can land after
			// the upload was aborted, and leave it behind (seen with
			// Versity's gateway). Abort waits for them.
			w.setErr(w.s.fail(fmt.Sprintf("upload part %d of", n), w.key, err))
			return
		}
		w.mu.Lock()
		for len(w.done) < n {
			w.done = append(w.done, minio.CompletePart{})
		}
		w.done[n-1] = minio.CompletePart{PartNumber: n, ETag: op.ETag, ChecksumSHA256: sum.b64}
		w.size += int64(len(part))
		w.mu.Unlock()
		select {
		case w.free <- part:
		default:
		}
	}()
	return nil
}

// Commit publishes the object unless one is already under its key
// (ErrExists, that object untouched).
func (w *writer) Commit(ctx context.Context) error {
	if w.finished {
		return fmt.Errorf("commit %s: already committed or aborted", w.s.Location(w.key))
	}
	if err := ctx.Err(); err != nil {
		w.Abort()
		return err
	}
	if w.uploadID == "" {
		w.finished = true
		defer w.cancel()
		if err := w.failed(); err != nil {
			return err
		}
		info, err := w.s.put(ctx, w.key, w.buf, true)
		w.buf = nil
		if err != nil {
			return err
		}
		w.checksum = info.ChecksumSHA256
		return nil
	}
	if len(w.buf) > 0 {
		if err := w.flush(); err != nil {
			w.Abort()
			return err
		}
	}
	w.wg.Wait()
	if err := w.failed(); err != nil {
		w.Abort()
		return err
	}
	w.finished = true
	defer w.cancel()
	opts := minio.PutObjectOptions{}
	opts.SetMatchETagExcept("*")
	info, err := w.s.c.CompleteMultipartUpload(ctx, w.s.bucket, w.obj, w.uploadID, w.done, opts)
	if err != nil {
		// The upload stays incomplete after a refused completion.
		aerr := w.s.c.AbortMultipartUpload(w.ctx, w.s.bucket, w.obj, w.uploadID)
		return errors.Join(w.s.fail("complete", w.key, err), aerr)
	}
	w.checksum = info.ChecksumSHA256
	return nil
}

// Abort discards what was written: the parts sent, and the upload.
func (w *writer) Abort() error {
	if w.finished {
		return nil
	}
	w.finished = true
	w.settle()
	w.buf = nil
	if w.uploadID == "" {
		return nil
	}
	ctx := context.WithoutCancel(w.ctx)
	if err := w.s.c.AbortMultipartUpload(ctx, w.s.bucket, w.obj, w.uploadID); err != nil {
		return w.s.fail("abort upload of", w.key, err)
	}
	return nil
}

// abortGrace is how long Abort lets the parts in flight finish before it
// cuts them.
var abortGrace = 30 * time.Second

// settle waits for the parts in flight, at most abortGrace, then cuts
// those left: aborting the upload after its last part landed leaves
// nothing behind.
func (w *writer) settle() {
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	t := time.NewTimer(abortGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	w.cancel()
	<-done
}

// Checksum returns the server's x-amz-checksum-sha256 of the committed
// object: the SHA-256 of its content for a single PUT, the SHA-256 of the
// parts' SHA-256s followed by "-<parts>" for a multipart upload.
func (w *writer) Checksum() string { return w.checksum }

// Tidy aborts the incomplete multipart uploads under folder: what a run
// killed while it uploaded an archive left (invisible, but stored and
// billed). The caller holds folder's lock, so no live run of this
// instance is uploading there.
func (s *Store) Tidy(folder string) {
	if store.CheckKey(folder) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for u := range s.c.ListIncompleteUploads(ctx, s.bucket, s.Object(folder)+"/", true) {
		if u.Err != nil {
			return
		}
		s.c.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID)
	}
}
