package encrypted

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// asyncSum is a sha256 computed on another goroutine, so that hashing the
// ciphertext overlaps with encrypting or decrypting it on a second core.
// At most a few buffers are in flight.
type asyncSum struct {
	ch   chan []byte
	done chan struct{}
	pool sync.Pool
	h    hash.Hash
	sum  string
}

func newAsyncSum() *asyncSum {
	a := &asyncSum{ch: make(chan []byte, 8), done: make(chan struct{}), h: sha256.New()}
	go func() {
		defer close(a.done)
		for b := range a.ch {
			a.h.Write(b)
			a.pool.Put(b[:0]) //nolint:staticcheck // buffers are reused whole
		}
	}()
	return a
}

// Write queues a copy of p; it never fails. After Sum it hashes nothing
// (a read of an object closed early).
func (a *asyncSum) Write(p []byte) (int, error) {
	n := len(p)
	if a.sum != "" {
		return n, nil
	}
	for len(p) > 0 {
		b, _ := a.pool.Get().([]byte)
		if b == nil {
			b = make([]byte, 0, 256<<10)
		}
		k := min(len(p), cap(b))
		b = append(b[:0], p[:k]...)
		a.ch <- b
		p = p[k:]
	}
	return n, nil
}

// Sum waits for every queued byte and returns the hex digest; later
// calls return it again. No write may follow the first call.
func (a *asyncSum) Sum() string {
	if a.sum == "" {
		close(a.ch)
		<-a.done
		a.sum = hex.EncodeToString(a.h.Sum(nil))
	}
	return a.sum
}

// Close stops the hashing goroutine without a digest (an abandoned
// stream).
func (a *asyncSum) Close() { a.Sum() }
