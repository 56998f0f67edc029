// Package storetest holds the contract every store.Store must keep, as
// tests any implementation runs against a real instance of itself (a
// directory, an S3 server): a model-based state machine of random
// creates, commits, aborts, replacements and removals, checked after every
// step against a map, and the lock's exclusion.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Run runs the contract against stores made by fresh, each one empty.
func Run(t *testing.T, fresh func(t *testing.T) store.Store) {
	t.Run("Model", func(t *testing.T) { testModel(t, fresh) })
	t.Run("Lock", func(t *testing.T) { testLock(t, fresh(t)) })
	t.Run("BadKeys", func(t *testing.T) { testBadKeys(t, fresh(t)) })
}

var keys = []string{"a/1.tar.zst", "a/1.tar.zst.sha256", "a/2.tombstone.json", "ab/1.tar.zst", "b/c/d", "top"}
var prefixes = []string{"", "a", "a/", "a/1", "ab", "b/", "b/c/", "t", "zz/"}

func testModel(t *testing.T, fresh func(t *testing.T) store.Store) {
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		s := fresh(t)
		model := map[string][]byte{}
		check := func() {
			for _, p := range prefixes {
				got, err := s.List(ctx, p)
				if err != nil {
					rt.Fatalf("List(%q): %v", p, err)
				}
				var want []string
				for k := range model {
					if strings.HasPrefix(k, p) {
						want = append(want, k)
					}
				}
				sort.Strings(want)
				var gotKeys []string
				for _, i := range got {
					gotKeys = append(gotKeys, i.Key)
					if i.Size != int64(len(model[i.Key])) {
						rt.Fatalf("List(%q): %s size %d, want %d", p, i.Key, i.Size, len(model[i.Key]))
					}
				}
				if strings.Join(gotKeys, ",") != strings.Join(want, ",") {
					rt.Fatalf("List(%q) = %v, want %v", p, gotKeys, want)
				}
			}
			for _, k := range keys {
				data, inModel := model[k]
				rc, err := s.Open(ctx, k)
				if !inModel {
					if !errors.Is(err, store.ErrNotExist) {
						rt.Fatalf("Open(%q) of a missing object: %v, want ErrNotExist", k, err)
					}
					if _, err := s.Stat(ctx, k); !errors.Is(err, store.ErrNotExist) {
						rt.Fatalf("Stat(%q) of a missing object: %v, want ErrNotExist", k, err)
					}
					continue
				}
				if err != nil {
					rt.Fatalf("Open(%q): %v", k, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, data) {
					rt.Fatalf("Open(%q) read %q (%v), want %q", k, got, err, data)
				}
				if fi, err := s.Stat(ctx, k); err != nil || fi.Size != int64(len(data)) || fi.Key != k {
					rt.Fatalf("Stat(%q) = %+v, %v", k, fi, err)
				}
			}
		}
		data := func(rt *rapid.T) []byte { return rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(rt, "data") }
		rt.Repeat(map[string]func(*rapid.T){
			"create": func(rt *rapid.T) {
				k := rapid.SampledFrom(keys).Draw(rt, "key")
				d := data(rt)
				w, err := s.Create(ctx, k)
				if err != nil {
					rt.Fatalf("Create(%q): %v", k, err)
				}
				if _, err := w.Write(d); err != nil {
					rt.Fatalf("Write: %v", err)
				}
				// Nothing is visible before Commit.
				if _, had := model[k]; !had {
					if _, err := s.Stat(ctx, k); !errors.Is(err, store.ErrNotExist) {
						rt.Fatalf("object %q visible before Commit: %v", k, err)
					}
				}
				if rapid.Bool().Draw(rt, "abort") {
					if err := w.Abort(); err != nil {
						rt.Fatalf("Abort: %v", err)
					}
					return
				}
				err = w.Commit(ctx)
				if _, had := model[k]; had {
					if !errors.Is(err, store.ErrExists) {
						rt.Fatalf("Commit over existing %q: %v, want ErrExists", k, err)
					}
					return
				}
				if err != nil {
					rt.Fatalf("Commit(%q): %v", k, err)
				}
				if err := w.Abort(); err != nil {
					rt.Fatalf("Abort after Commit: %v", err)
				}
				model[k] = d
			},
			"put": func(rt *rapid.T) {
				k := rapid.SampledFrom(keys).Draw(rt, "key")
				d := data(rt)
				if err := s.Put(ctx, k, d); err != nil {
					rt.Fatalf("Put(%q): %v", k, err)
				}
				model[k] = d
			},
			"remove": func(rt *rapid.T) {
				k := rapid.SampledFrom(keys).Draw(rt, "key")
				err := s.Remove(ctx, k)
				if _, had := model[k]; !had {
					if !errors.Is(err, store.ErrNotExist) {
						rt.Fatalf("Remove(%q) of a missing object: %v, want ErrNotExist", k, err)
					}
					return
				}
				if err != nil {
					rt.Fatalf("Remove(%q): %v", k, err)
				}
				delete(model, k)
			},
			"": func(rt *rapid.T) { check() },
		})
	})
}

func testLock(t *testing.T, s store.Store) {
	ctx := context.Background()
	unlock, err := s.Lock(ctx, "inst")
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if _, err := s.Lock(ctx, "inst"); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Lock of a held lock: %v, want ErrLocked", err)
	}
	other, err := s.Lock(ctx, "other")
	if err != nil {
		t.Fatalf("Lock of another name while the first is held: %v", err)
	}
	other()
	unlock()
	again, err := s.Lock(ctx, "inst")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	again()
	if got, err := s.List(ctx, ""); err != nil || len(got) != 0 {
		t.Fatalf("locks must not show as objects: %v, %v", got, err)
	}
}

func testBadKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, k := range []string{"", "/abs", "a/../b", "..", "a//b", "a/", ".hidden", "a/.lock", "a\\b", "a\x00b"} {
		var ke *store.KeyError
		if _, err := s.Create(ctx, k); !errors.As(err, &ke) {
			t.Errorf("Create(%q): %v, want *KeyError", k, err)
		}
		if err := s.Put(ctx, k, nil); !errors.As(err, &ke) {
			t.Errorf("Put(%q): %v, want *KeyError", k, err)
		}
		if _, err := s.Open(ctx, k); !errors.As(err, &ke) {
			t.Errorf("Open(%q): %v, want *KeyError", k, err)
		}
		if err := s.Remove(ctx, k); !errors.As(err, &ke) {
			t.Errorf("Remove(%q): %v, want *KeyError", k, err)
		}
	}
}
