package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

func newFollowed(t *testing.T) (*File, *FollowWriter) {
	t.Helper()
	s, err := NewFile(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.CreateFollowed(context.Background(), "inst/a.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Abort() })
	return s, w
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestFollowWriter_ReadWhileWritten: readers follow the writes as they
// come, in pieces of random sizes, and end with every byte; until Commit
// the object has no name in the store's directory (nothing to open and
// change by a path); Commit publishes the very bytes read.
func TestFollowWriter_ReadWhileWritten(t *testing.T) {
	s, w := newFollowed(t)
	want := make([]byte, 9<<20+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	var got [2][]byte
	var wg sync.WaitGroup
	for i := range got {
		r := w.Reader()
		wg.Go(func() {
			b, err := io.ReadAll(r)
			if err != nil {
				t.Error(err)
			}
			got[i] = b
		})
	}
	for rest := want; len(rest) > 0; {
		n := min(len(rest), 1+rng.IntN(1<<20))
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
		if files := names(t, s.Dir()); len(files) != 0 {
			t.Fatalf("the object being written has a name: %v", files)
		}
	}
	w.End()
	wg.Wait()
	for i := range got {
		if !bytes.Equal(got[i], want) {
			t.Fatalf("reader %d read %d bytes, not the %d written", i, len(got[i]), len(want))
		}
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, errWriteAfterEnd) {
		t.Fatalf("a write after End: %v", err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(s.Location("inst/a.tar.zst"))
	if err != nil || !bytes.Equal(stored, want) {
		t.Fatalf("committed: %d bytes, %v", len(stored), err)
	}
	if err := w.Unchanged(); err != nil {
		t.Fatal(err)
	}
}

// TestFollowWriter_AbortEndsReaders: a reader waiting for more fails
// once the writer aborts, and nothing is left in the store.
func TestFollowWriter_AbortEndsReaders(t *testing.T) {
	s, w := newFollowed(t)
	if _, err := w.Write([]byte("some")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := io.ReadAll(w.Reader())
		done <- err
	}()
	w.Abort()
	if err := <-done; err == nil {
		t.Fatal("a reader of an aborted object ended without an error")
	}
	if files := names(t, s.Dir()); len(files) != 0 {
		t.Fatalf("an aborted object left %v", files)
	}
}

// TestFollowWriter_CommitRefusesChange: a write into the file after End
// by anything else (here through /proc, the only way to it before it has
// a name) makes Commit refuse; a write into the object committed, or its
// replacement, makes Unchanged refuse; an existing key is kept.
func TestFollowWriter_CommitRefusesChange(t *testing.T) {
	ctx := context.Background()
	t.Run("before commit", func(t *testing.T) {
		s, w := newFollowed(t)
		if _, err := w.Write(bytes.Repeat([]byte("a"), 1<<20)); err != nil {
			t.Fatal(err)
		}
		w.End()
		if _, err := io.ReadAll(w.Reader()); err != nil {
			t.Fatal(err)
		}
		other, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(w.f.Fd())), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = other.WriteAt([]byte("b"), 100)
		other.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); !errors.Is(err, ErrChangedAfterWrite) {
			t.Fatalf("commit after a write by another: %v", err)
		}
		if files := names(t, s.Dir()); len(files) != 0 {
			t.Fatalf("a refused object was published: %v", files)
		}
	})
	for _, tc := range []struct {
		name   string
		change func(path string) error
	}{
		{"a byte written", func(p string) error {
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt([]byte("b"), 10)
			return err
		}},
		{"truncated", func(p string) error { return os.Truncate(p, 5) }},
		{"replaced", func(p string) error {
			if err := os.WriteFile(p+".new", bytes.Repeat([]byte("a"), 1<<10), 0o600); err != nil {
				return err
			}
			return os.Rename(p+".new", p)
		}},
		{"linked", func(p string) error { return os.Link(p, p+".other") }},
	} {
		t.Run("after commit: "+tc.name, func(t *testing.T) {
			s, w := newFollowed(t)
			if _, err := w.Write(bytes.Repeat([]byte("a"), 1<<10)); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := w.Unchanged(); err != nil {
				t.Fatal(err)
			}
			if err := tc.change(s.Location("inst/a.tar.zst")); err != nil {
				t.Fatal(err)
			}
			if err := w.Unchanged(); !errors.Is(err, ErrChangedAfterWrite) {
				t.Fatalf("unchanged after the change: %v", err)
			}
		})
	}
	t.Run("key taken", func(t *testing.T) {
		s, w := newFollowed(t)
		if err := s.Put(ctx, "inst/a.tar.zst", []byte("first")); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("second")); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); !errors.Is(err, ErrExists) {
			t.Fatalf("commit onto a taken key: %v", err)
		}
		if b, _ := os.ReadFile(s.Location("inst/a.tar.zst")); string(b) != "first" {
			t.Fatalf("the object under the key became %q", b)
		}
	})
}
