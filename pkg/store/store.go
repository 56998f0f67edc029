// Package store is where a host's archives and tombstones live: a
// directory today (the file store), object storage tomorrow. Soft delete,
// restore and purge speak to a Store only, so that a new destination is
// one new implementation, registered by its URL scheme, proven by the
// shared contract tests of package storetest.
//
// Keys are slash-separated relative names such as
// "tracim-acme/20260101T000000Z-ab12.tar.zst". No element of a key may be
// empty, "." or "..", or start with "." (a store keeps its temporary
// objects and locks under such names, out of every listing).
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Sentinel errors callers branch on; implementations wrap them.
var (
	// ErrNotExist: no object under that key.
	ErrNotExist = errors.New("no such object")
	// ErrExists: Create's Commit found an object already under its key
	// (archives are never overwritten).
	ErrExists = errors.New("object already exists")
	// ErrLocked: another run holds the lock.
	ErrLocked = errors.New("locked by another run")
	// ErrRetained: the store itself refuses to remove the object before
	// a date or while a legal hold is on (S3 Object Lock).
	ErrRetained = errors.New("object under retention")
)

// Info describes one object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
	// Hidden: the key's current version is a delete marker (a plain
	// DELETE in a versioned bucket, by hand or by a lifecycle rule); the
	// store still reads the newest version that holds data (S3 only).
	Hidden bool
}

// Writer receives a new object. Nothing is visible under its key until
// Commit returns nil; Abort (or a crash) leaves nothing under the key.
// Exactly one of Commit or Abort is called; Abort after Commit is a no-op,
// so that `defer w.Abort()` is safe.
type Writer interface {
	io.Writer
	// Commit makes the object durable and visible, or returns an error
	// wrapping ErrExists when the key is taken.
	Commit(ctx context.Context) error
	// Abort discards what was written.
	Abort() error
}

// Store is one place that holds archives, their sidecars and tombstones.
type Store interface {
	// Create starts a new object under key, which must not exist when
	// the writer commits.
	Create(ctx context.Context, key string) (Writer, error)
	// Put atomically writes a small object, replacing any object under
	// key (tombstones change state in place).
	Put(ctx context.Context, key string, data []byte) error
	// Open reads an object; a missing one is ErrNotExist.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes an object; a missing one is ErrNotExist.
	Stat(ctx context.Context, key string) (Info, error)
	// List returns the objects whose keys start with prefix, sorted by
	// key. A prefix ending in "/" lists a folder and what it holds.
	List(ctx context.Context, prefix string) ([]Info, error)
	// Remove deletes an object; a missing one is ErrNotExist.
	Remove(ctx context.Context, key string) error
	// Lock takes the exclusive lock named name (one per instance). It
	// does not wait: a lock held elsewhere is ErrLocked. unlock releases
	// it.
	Lock(ctx context.Context, name string) (unlock func(), err error)
	// Location names the object under key for people: a path, a URL.
	Location(key string) string
}

// KeyError is a key no store accepts.
type KeyError struct {
	Key string
	Why string
}

func (e *KeyError) Error() string { return fmt.Sprintf("invalid store key %q: %s", e.Key, e.Why) }

// Hint says how to fix it.
func (e *KeyError) Hint() string {
	return "keys are relative slash-separated names whose elements are not empty, '.', '..', and do not start with '.'"
}

// CheckKey returns a *KeyError when key cannot name an object.
func CheckKey(key string) error {
	if key == "" {
		return &KeyError{Key: key, Why: "empty"}
	}
	if strings.ContainsRune(key, 0) || strings.Contains(key, "\\") {
		return &KeyError{Key: key, Why: "holds a NUL or a backslash"}
	}
	for _, el := range strings.Split(key, "/") {
		switch {
		case el == "":
			return &KeyError{Key: key, Why: "has an empty element (leading, trailing or doubled '/')"}
		case strings.HasPrefix(el, "."):
			return &KeyError{Key: key, Why: fmt.Sprintf("element %q starts with '.'", el)}
		}
	}
	return nil
}

// checkPrefix accepts "" and any key, with or without a trailing "/".
func checkPrefix(prefix string) error {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" {
		if prefix == "/" {
			return &KeyError{Key: prefix, Why: "absolute"}
		}
		return nil
	}
	return CheckKey(p)
}
