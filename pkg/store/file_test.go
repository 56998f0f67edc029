package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/storetest"
)

func newFile(t *testing.T) store.Store {
	s, err := store.NewFile(filepath.Join(t.TempDir(), "archives"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFile_Contract(t *testing.T) { storetest.Run(t, newFile) }

func TestOpen_Locations(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, loc := range []string{dir, "file://" + dir} {
		s, err := store.Open(ctx, loc)
		if err != nil {
			t.Fatalf("Open(%q): %v", loc, err)
		}
		if got := s.Location("a/b"); got != filepath.Join(dir, "a", "b") {
			t.Errorf("Open(%q).Location = %s", loc, got)
		}
	}
	for _, loc := range []string{"relative/dir", "nosuch://bucket/x", "file://otherhost/x"} {
		if _, err := store.Open(ctx, loc); err == nil {
			t.Errorf("Open(%q) accepted", loc)
		} else if !strings.Contains(err.Error(), loc) && !strings.Contains(err.Error(), "otherhost") {
			t.Errorf("Open(%q): error does not name it: %v", loc, err)
		}
	}
}

// A symbolic link planted in the store never lets a key reach outside it:
// not to read, list, write or remove.
func TestFile_LinksNeverLeaveTheStore(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "archives")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "inst")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "file-link")); err != nil {
		t.Fatal(err)
	}
	s, _ := store.NewFile(dir)
	if _, err := s.Open(ctx, "inst/secret"); err == nil {
		t.Error("Open through a linked folder reached outside the store")
	}
	if _, err := s.Open(ctx, "file-link"); err == nil {
		t.Error("Open of a link to a file outside the store succeeded")
	}
	if err := s.Remove(ctx, "inst/secret"); err == nil {
		t.Error("Remove through a linked folder succeeded")
	}
	if err := s.Remove(ctx, "file-link"); err == nil {
		t.Error("Remove of a link succeeded")
	}
	if err := s.Put(ctx, "inst/new", []byte("x")); err == nil {
		t.Error("Put through a linked folder succeeded")
	}
	if _, err := s.Lock(ctx, "inst"); err == nil {
		t.Error("Lock through a linked folder succeeded")
	}
	got, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("List shows links or what they point to: %v", got)
	}
	if data, err := os.ReadFile(secret); err != nil || string(data) != "keep" {
		t.Fatalf("the file outside changed: %q %v", data, err)
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Fatalf("something was written outside the store: %v", entries)
	}
}

// A full disk fails the write; the object already there stays whole and
// no temporary file is left.
func TestFile_FullDiskLeavesTheOldObject(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	ctx := context.Background()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	s, _ := store.NewFile(dir)
	old := bytes.Repeat([]byte("o"), 100<<10)
	if err := s.Put(ctx, "inst/t.json", old); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("n"), 2<<20)
	if err := s.Put(ctx, "inst/t.json", big); err == nil {
		t.Fatal("Put of 2 MiB on a 1 MiB disk succeeded")
	}
	w, err := s.Create(ctx, "inst/a.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	_, werr := w.Write(big)
	cerr := w.Commit(ctx)
	if werr == nil && cerr == nil {
		t.Fatal("Create of 2 MiB on a 1 MiB disk committed")
	}
	w.Abort()
	rc, err := s.Open(ctx, "inst/t.json")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, old) {
		t.Fatalf("the old object changed: %d bytes", len(got))
	}
	if _, err := s.Stat(ctx, "inst/a.tar.zst"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("a failed Create left an object: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "inst"))
	for _, e := range entries {
		if e.Name() != "t.json" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// A run killed at a random instant leaves each object whole or absent.
func TestFile_KilledWriterLeavesWholeOrNothing(t *testing.T) {
	if os.Getenv("FLEETSAFE_STORE_CHILD") != "" {
		t.Skip("child")
	}
	ctx := context.Background()
	for i := 0; i < 8; i++ {
		dir := filepath.Join(t.TempDir(), "archives")
		s, _ := store.NewFile(dir)
		old := bytes.Repeat([]byte("old "), 50000)
		if err := s.Put(ctx, "inst/t.json", old); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestFile_ChildWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), "FLEETSAFE_STORE_CHILD="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		rc, err := s.Open(ctx, "inst/t.json")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, old) && !bytes.Equal(got, childPut) {
			t.Fatalf("tombstone partial after a kill: %d bytes", len(got))
		}
		if rc, err := s.Open(ctx, "inst/a.tar.zst"); err == nil {
			got, _ := io.ReadAll(rc)
			rc.Close()
			if len(got) != childArchiveSize {
				t.Fatalf("archive visible but partial after a kill: %d of %d bytes", len(got), childArchiveSize)
			}
		} else if !errors.Is(err, store.ErrNotExist) {
			t.Fatal(err)
		}
		objs, err := s.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.Key != "inst/t.json" && o.Key != "inst/a.tar.zst" {
				t.Fatalf("unexpected object after a kill: %s", o.Key)
			}
		}
	}
}

var childPut = bytes.Repeat([]byte("new "), 60000)

const childArchiveSize = 8 << 20

func TestFile_ChildWriter(t *testing.T) {
	dir := os.Getenv("FLEETSAFE_STORE_CHILD")
	if dir == "" {
		t.Skip("run by TestFile_KilledWriterLeavesWholeOrNothing")
	}
	ctx := context.Background()
	s, _ := store.NewFile(dir)
	for {
		if err := s.Put(ctx, "inst/t.json", childPut); err != nil {
			panic(err)
		}
		w, err := s.Create(ctx, "inst/a.tar.zst")
		if err != nil {
			panic(err)
		}
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for n := 0; n < childArchiveSize; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				panic(err)
			}
		}
		if err := w.Commit(ctx); err != nil {
			panic(fmt.Sprint("commit: ", err))
		}
		if err := s.Remove(ctx, "inst/a.tar.zst"); err != nil {
			panic(err)
		}
	}
}
