package store

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Opener opens a store from its location, such as a directory or
// s3://bucket/prefix.
type Opener func(ctx context.Context, u *url.URL) (Store, error)

var (
	mu      sync.Mutex
	openers = map[string]Opener{}
)

// Register makes a URL scheme openable. Registering a scheme twice
// panics: two implementations would silently compete.
func Register(scheme string, open Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic("store: scheme " + scheme + " registered twice")
	}
	openers[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open opens the store at location: an absolute directory path (the file
// store), or a URL of a registered scheme.
func Open(ctx context.Context, location string) (Store, error) {
	if strings.HasPrefix(location, "/") {
		return NewFile(location)
	}
	u, err := url.Parse(location)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("archive store %q: neither an absolute directory nor a URL (known schemes: %s)", location, strings.Join(Schemes(), ", "))
	}
	mu.Lock()
	open, ok := openers[u.Scheme]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("archive store %q: unknown scheme %q (known: %s)", location, u.Scheme, strings.Join(Schemes(), ", "))
	}
	return open(ctx, u)
}

func init() {
	Register("file", func(_ context.Context, u *url.URL) (Store, error) {
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("archive store %s: a file URL names a directory of this host (file:///path)", u)
		}
		return NewFile(u.Path)
	})
}
