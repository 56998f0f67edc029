package softdelete

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// asyncHash is a sha256 computed on another goroutine, so that hashing a
// stream overlaps with compressing or decompressing it on a second core.
// Memory stays bounded: at most a few buffers are in flight.
type asyncHash struct {
	ch   chan []byte
	done chan struct{}
	pool sync.Pool
	h    hash.Hash
}

func newAsyncHash() *asyncHash {
	a := &asyncHash{ch: make(chan []byte, 8), done: make(chan struct{}), h: sha256.New()}
	go func() {
		defer close(a.done)
		for b := range a.ch {
			a.h.Write(b)
			a.pool.Put(b[:0]) //nolint:staticcheck // a slice is fine here: buffers are reused whole
		}
	}()
	return a
}

// Write queues a copy of p for hashing; it never fails.
func (a *asyncHash) Write(p []byte) (int, error) {
	n := len(p)
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

// Sum waits for every queued byte and returns the hex digest. The hash
// takes no writes after Sum.
func (a *asyncHash) Sum() string {
	close(a.ch)
	<-a.done
	return hex.EncodeToString(a.h.Sum(nil))
}
