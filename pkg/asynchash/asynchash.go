// Package asynchash computes a sha256 on another goroutine, so that
// hashing a stream overlaps with compressing, encrypting or decrypting it
// on a second core. Memory stays bounded: at most a few buffers are in
// flight.
package asynchash

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// Hash is a sha256 fed by Write and computed on its own goroutine.
type Hash struct {
	ch   chan []byte
	done chan struct{}
	pool sync.Pool
	h    hash.Hash
	sum  string
}

// New starts a Hash; Sum (or Close) must be called to end its goroutine.
func New() *Hash {
	a := &Hash{ch: make(chan []byte, 8), done: make(chan struct{}), h: sha256.New()}
	go func() {
		defer close(a.done)
		for b := range a.ch {
			a.h.Write(b)
			a.pool.Put(b[:0]) //nolint:staticcheck // a slice is fine here: buffers are reused whole
		}
	}()
	return a
}

// Write queues a copy of p; it never fails. After Sum it hashes nothing
// (a stream read on after its digest was taken, or closed early).
func (a *Hash) Write(p []byte) (int, error) {
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
func (a *Hash) Sum() string {
	if a.sum == "" {
		close(a.ch)
		<-a.done
		a.sum = hex.EncodeToString(a.h.Sum(nil))
	}
	return a.sum
}

// Close stops the hashing goroutine without a digest (an abandoned
// stream).
func (a *Hash) Close() { a.Sum() }
