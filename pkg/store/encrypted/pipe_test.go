package encrypted_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/encrypted"
)

// settled waits until the goroutines are back to at most base (the
// pipeline's goroutines ended), failing after 5 s.
func settled(t *testing.T, base int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%s: %d goroutines left running, %d before:\n%s", what, runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func keysFor(t *testing.T) encrypted.Keys {
	keys, err := encrypted.Ephemeral(encrypted.Keys{Recipients: []age.Recipient{identity(t).Recipient()}})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// Encryption runs on a goroutine of its own: a store that fails in the
// middle of the stream (a full disk: a tmpfs of 1 MiB, for an archive of
// 8 MiB) makes a later Write fail with that error, soon after (what is
// queued is bounded), Seal and Commit fail with it too, nothing is left
// under the key, and no goroutine is left running.
func TestEncrypted_WriteErrorMidStreamSurfaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	file, err := store.NewFile(filepath.Join(dir, "archives"))
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	ctx := context.Background()
	st := encrypted.Wrap(file, keysFor(t))
	w, err := st.Create(ctx, "acme/a.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 100<<10)
	rand.Read(chunk)
	written := 0
	var werr error
	for written < 8<<20 {
		n, err := w.Write(chunk)
		written += n
		if err != nil {
			werr = err
			break
		}
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("wrote %d bytes to a 1 MiB disk: Write returned %v, want ENOSPC", written, werr)
	}
	// The error comes back once the queue (a few 256 KiB chunks) is
	// full behind the failed write, not at the end of the stream.
	if written > 4<<20 {
		t.Fatalf("the failure came back only after %d bytes", written)
	}
	if _, err := w.(interface{ Seal() (string, error) }).Seal(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Seal after the failure: %v", err)
	}
	if err := w.Commit(ctx); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Commit after the failure: %v", err)
	}
	if _, err := file.Stat(ctx, "acme/a.tar.zst"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("an object is under the key after a failed write: %v", err)
	}
	settled(t, base, "after a failed write")
}

// Abort in the middle of the stream ends the encrypting goroutine and
// leaves nothing; Write after it is refused.
func TestEncrypted_AbortMidStream(t *testing.T) {
	file, _ := store.NewFile(filepath.Join(t.TempDir(), "archives"))
	base := runtime.NumGoroutine()
	ctx := context.Background()
	w, err := encrypted.Wrap(file, keysFor(t)).Create(ctx, "acme/a.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for range 3 {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(chunk); err == nil {
		t.Fatal("a write after Abort succeeded")
	}
	if _, err := file.Stat(ctx, "acme/a.tar.zst"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("an object is under the key after Abort: %v", err)
	}
	settled(t, base, "after Abort")
}

// stalled is a store whose objects are served through a pipe that stops
// after their first bytes, as a connection that hangs.
type stalled struct {
	store.Store
	first int
}

func (s stalled) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go pw.Write(data[:s.first]) // then nothing: the reader waits
	return pr, nil
}

// Decryption reads ahead on a goroutine of its own: the plaintext comes
// back whole, the stored object's sha256 is of all of it even when the
// plaintext was not read to its end, a changed byte still fails, and
// Close ends the goroutine, also while it waits on a stalled connection.
func TestEncrypted_ReadAhead(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "archives")
	file, _ := store.NewFile(dir)
	st := encrypted.Wrap(file, keysFor(t))
	plain := make([]byte, 3<<20+12345) // several read-ahead chunks and a short last one
	rand.Read(plain)
	w, err := st.Create(ctx, "acme/a.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	for p := plain; len(p) > 0; {
		n := min(len(p), 70000)
		w.Write(p[:n])
		p = p[n:]
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "acme", "a.tar.zst"))
	rawSum := sha256.Sum256(raw)
	base := runtime.NumGoroutine()

	rc, err := st.Open(ctx, "acme/a.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("read back %d bytes of %d: %v", len(got), len(plain), err)
	}
	rc.Close()

	rc, _ = st.Open(ctx, "acme/a.tar.zst")
	io.ReadFull(rc, make([]byte, 100<<10))
	sum, err := rc.(interface{ RawSHA256() (string, error) }).RawSHA256()
	if err != nil || sum != hex.EncodeToString(rawSum[:]) {
		t.Fatalf("RawSHA256 after a partial read: %s %v, want the stored object's %x", sum, err, rawSum)
	}
	rc.Close()

	rc, _ = st.Open(ctx, "acme/a.tar.zst")
	io.ReadFull(rc, make([]byte, 10))
	rc.Close() // early, the goroutine reading ahead
	if _, err := rc.Read(make([]byte, 10)); err == nil {
		t.Fatal("a read after Close succeeded")
	}
	settled(t, base, "after an early Close")

	done := make(chan struct{})
	keys := keysFor(t)
	st2 := encrypted.Wrap(file, keys)
	w, _ = st2.Create(ctx, "acme/b.tar.zst")
	w.Write(plain)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err = encrypted.Wrap(stalled{file, 1 << 20}, keys).Open(ctx, "acme/b.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(rc, make([]byte, 100<<10))
	go func() { rc.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs while the connection is stalled")
	}
	settled(t, base, "after Close on a stalled connection")

	raw[len(raw)/2] ^= 1
	os.WriteFile(filepath.Join(dir, "acme", "a.tar.zst"), raw, 0o600)
	rc, _ = st.Open(ctx, "acme/a.tar.zst")
	got, err = io.ReadAll(rc)
	rc.Close()
	if err == nil || len(got) > len(raw)/2 {
		t.Fatalf("a changed byte in the middle: read %d bytes, error %v", len(got), err)
	}
	settled(t, base, "after a failed decryption")
}
