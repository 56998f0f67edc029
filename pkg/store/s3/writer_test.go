package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/fleetsafe/fleetsafe/pkg/store"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// An object of several parts is uploaded while it is written: the
// multipart upload exists (invisible) before Commit, the object is
// byte-identical after it, memory stays bounded, and the server's
// checksum is the composite SHA-256 of the parts.
func TestS3_StreamsMultipart(t *testing.T) {
	ctx := context.Background()
	bucket := s3test.Bucket(t, false)
	set := s3test.Settings(t)
	set.PartSize = 5 << 20
	st, err := s3store.Open(ctx, "s3://"+bucket+"/p", set)
	if err != nil {
		t.Fatal(err)
	}
	c := s3test.Client(t)
	w, err := st.Create(ctx, "inst/big.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	h := sha256.New()
	chunk := make([]byte, 1<<20)
	var peak uint64
	for i := 0; i < 48; i++ { // 48 MiB: 10 parts of 5 MiB
		for j := range chunk {
			chunk[j] = byte(rng.Uint32())
		}
		h.Write(chunk)
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	uploads := 0
	for u := range c.ListIncompleteUploads(ctx, bucket, "p/", true) {
		if u.Err == nil && u.Key == "p/inst/big.tar.zst" {
			uploads++
		}
	}
	if uploads != 1 {
		t.Errorf("%d multipart uploads under way before Commit, want 1 (not streamed)", uploads)
	}
	if _, err := st.Stat(ctx, "inst/big.tar.zst"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("object visible before Commit: %v", err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// 48 MiB went through; at most a few 5 MiB parts were held.
	if peak > 32<<20 {
		t.Errorf("heap in use reached %d MiB while writing 48 MiB", peak>>20)
	}
	rc, err := st.Open(ctx, "inst/big.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	h2 := sha256.New()
	n, err := io.Copy(h2, rc)
	rc.Close()
	if err != nil || n != 48<<20 || !bytes.Equal(h.Sum(nil), h2.Sum(nil)) {
		t.Fatalf("read back %d bytes (%v), same content %v", n, err, bytes.Equal(h.Sum(nil), h2.Sum(nil)))
	}
	if cs, ok := w.(interface{ Checksum() string }); !ok || !strings.HasSuffix(cs.Checksum(), "-10") {
		t.Errorf("server checksum %v, want a composite SHA-256 of 10 parts", w)
	}
}

// A multipart upload never replaces an object that appeared under its
// key meanwhile (If-None-Match on the completion), and leaves no upload
// behind; Abort leaves neither object nor upload.
func TestS3_MultipartNeverReplacesAndAbortLeavesNothing(t *testing.T) {
	ctx := context.Background()
	bucket := s3test.Bucket(t, true)
	set := s3test.Settings(t)
	set.PartSize = 5 << 20
	st, err := s3store.Open(ctx, "s3://"+bucket, set)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 11<<20)
	w, _ := st.Create(ctx, "a/arch")
	w.Write(big)
	if err := st.Put(ctx, "a/arch", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Commit over an object put meanwhile: %v, want ErrExists", err)
	}
	rc, _ := st.Open(ctx, "a/arch")
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "first" {
		t.Fatalf("the object was replaced: %d bytes", len(got))
	}
	w2, _ := st.Create(ctx, "a/other")
	w2.Write(big)
	if err := w2.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(ctx, "a/other"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("aborted object visible: %v", err)
	}
	for u := range s3test.Client(t).ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err == nil {
			t.Errorf("upload left behind: %s", u.Key)
		}
	}
}

// A lock whose holder stopped renewing it (a killed run) refuses until
// its TTL has passed, then is taken over by exactly one of several runs
// trying at once; a live holder's lock refuses, and says by whom.
func TestS3_LockStaleTakenOverByOne(t *testing.T) {
	ctx := context.Background()
	bucket := s3test.Bucket(t, false)
	c := s3test.Client(t)
	// What a killed run leaves: the lock object, renewed no more.
	if _, err := c.PutObject(ctx, bucket, "x/inst/.lock", strings.NewReader(`{"owner":"dead","host":"gone","pid":1}`), -1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// The lock's times are compressed to seconds, with margins for a
	// loaded machine: a lock is abandoned after ttl+skew = 4 s without
	// renewal; its holder renews it every second (ttl/3), each renewal
	// given a second. S3 dates are whole seconds (LastModified is read up
	// to a second older than it is), so a renewed lock looks at most
	// about 2 s old: a margin of 2 s against a late renewal or a slow
	// request, where ttl 2 s and no skew left a third of a second.
	const ttl, skew = 3 * time.Second, time.Second
	openTTL := func(ttl time.Duration) *s3store.Store {
		s := s3test.Store(t, bucket, "x")
		s.LockTTL, s.LockSkew = ttl, skew
		return s
	}
	open := func() *s3store.Store { return openTTL(ttl) }
	// A lock written now refuses (judged with a TTL of a minute, so that
	// a slow request between the write and the look cannot age it).
	if _, err := openTTL(time.Minute).Lock(ctx, "inst"); !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "held by process 1 on gone") {
		t.Fatalf("Lock of a lock written now: %v", err)
	}
	// A sleep is a lower bound: a slow machine only ages the lock more.
	time.Sleep(ttl + skew + 500*time.Millisecond)
	var wins atomic.Int32
	var unlocks sync.Map
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := open().Lock(ctx, "inst")
			if err == nil {
				wins.Add(1)
				unlocks.Store(i, unlock)
			} else if !errors.Is(err, store.ErrLocked) {
				t.Errorf("Lock: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d runs took over the stale lock at once, want 1", wins.Load())
	}
	// The winner renews it: still held after its TTL.
	time.Sleep(ttl + skew + 500*time.Millisecond)
	if _, err := open().Lock(ctx, "inst"); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("Lock of a renewed lock: %v", err)
	}
	if pid, _, held := open().LockHolder("inst"); !held || pid != os.Getpid() {
		t.Errorf("LockHolder: %d %v, want this process", pid, held)
	}
	unlocks.Range(func(_, v any) bool { v.(func())(); return true })
	unlock, err := open().Lock(ctx, "inst")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlock()
	if objs, _ := open().List(ctx, ""); len(objs) != 0 {
		t.Errorf("locks listed as objects: %v", objs)
	}
}

// Runs starting at the same instant on a free lock: exactly one holds it.
func TestS3_LockOneOfMany(t *testing.T) {
	ctx := context.Background()
	bucket := s3test.Bucket(t, true)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s3test.Store(t, bucket, "").Lock(ctx, "inst"); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrLocked) {
				t.Errorf("Lock: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d runs hold the lock, want 1", wins.Load())
	}
}

// What a run killed while uploading leaves (an incomplete multipart
// upload) is invisible, and Tidy of its folder aborts it; another
// folder's uploads are left alone.
func TestS3_TidyAbortsKilledUploads(t *testing.T) {
	ctx := context.Background()
	bucket := s3test.Bucket(t, false)
	set := s3test.Settings(t)
	set.PartSize = 5 << 20
	st, err := s3store.Open(ctx, "s3://"+bucket+"/p", set)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("y"), 6<<20)
	for _, k := range []string{"inst/a.tar.zst", "other/b.tar.zst"} {
		w, _ := st.Create(ctx, k)
		if _, err := w.Write(big); err != nil { // a part goes; then the run "dies"
			t.Fatal(err)
		}
	}
	// The parts in flight land: wait until the server lists each
	// upload with its part (not a fixed delay, which a loaded machine can
	// outlast and a part would then land on an upload Tidy is aborting).
	core := minio.Core{Client: s3test.Client(t)}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		landed := 0
		for u := range core.ListIncompleteUploads(ctx, bucket, "", true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			if r, err := core.ListObjectParts(ctx, bucket, u.Key, u.UploadID, 0, 10); err == nil && len(r.ObjectParts) > 0 {
				landed++
			}
		}
		if landed == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes, %d of the 2 uploads have their part on the server", landed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if objs, _ := st.List(ctx, ""); len(objs) != 0 {
		t.Fatalf("incomplete uploads visible: %v", objs)
	}
	st.Tidy("inst")
	var left []string
	for u := range s3test.Client(t).ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err == nil {
			left = append(left, u.Key)
		}
	}
	if strings.Join(left, ",") != "p/other/b.tar.zst" {
		t.Fatalf("uploads left after Tidy(inst): %v, want only p/other/b.tar.zst", left)
	}
}

// A run of this host killed (SIGKILL) while it holds the lock blocks
// nobody: the next run finds its process gone and takes the lock at once,
// long before the TTL.
func TestS3_LockOfAKilledProcessTakenAtOnce(t *testing.T) {
	if bucket := os.Getenv("S3_LOCK_CHILD_BUCKET"); bucket != "" {
		st := s3test.Store(t, bucket, "k")
		if _, err := st.Lock(context.Background(), "inst"); err != nil {
			t.Fatal(err)
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	bucket := s3test.Bucket(t, false)
	cmd := exec.Command(os.Args[0], "-test.run=^TestS3_LockOfAKilledProcessTakenAtOnce$")
	cmd.Env = append(os.Environ(), "S3_LOCK_CHILD_BUCKET="+bucket)
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child not killed holding the lock: %v", err)
	}
	st := s3test.Store(t, bucket, "k")
	if _, err := st.Stat(context.Background(), "inst/.lock"); err == nil {
		t.Fatal("a hidden key was accepted")
	}
	if objs, err := s3test.Client(t).StatObject(context.Background(), bucket, "k/inst/.lock", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("the killed child left no lock: %v %v", objs, err)
	}
	if _, _, held := st.LockHolder("inst"); held {
		t.Error("LockHolder reports a dead process")
	}
	unlock, err := st.Lock(context.Background(), "inst")
	if err != nil {
		t.Fatalf("Lock after its holder was killed: %v", err)
	}
	unlock()
}

// Settings that cannot work are refused with words that say which, and
// never with the secret.
func TestS3_BadSettingsRefused(t *testing.T) {
	ctx := context.Background()
	set := s3test.Settings(t)
	real := "s3://" + s3test.Bucket(t, false) + "/x"
	for _, tc := range []struct {
		loc  string
		mod  func(*s3store.Settings)
		want string
	}{
		{"s3://", nil, "no bucket"},
		{"s3://b/../x", nil, "prefix"},
		{"s3://user:pw@b/x", nil, "s3://bucket/prefix"},
		{"s3://b/x", func(s *s3store.Settings) { s.Endpoint = "ftp://host" }, "http or https"},
		{"s3://b/x", func(s *s3store.Settings) { s.Endpoint = "http://host/path" }, "only scheme, host and port"},
		{"s3://b/x", func(s *s3store.Settings) { s.SecretKey = "" }, "both the access key and the secret key"},
		{"s3://b/x", func(s *s3store.Settings) { s.PathStyle = "sometimes" }, "path style"},
		{"s3://no-such-bucket-here/x", nil, "does not exist"},
		{real, func(s *s3store.Settings) { s.SecretKey = "Wr0ng-S3cret-9d1e" }, "s3_secret_key"},
	} {
		s := set
		if tc.mod != nil {
			tc.mod(&s)
		}
		_, err := s3store.Open(ctx, tc.loc, s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %v, want an error saying %q", tc.loc, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), set.SecretKey) || strings.Contains(err.Error(), "Wr0ng-S3cret")) {
			t.Errorf("Open(%q): the secret is in the error: %v", tc.loc, err)
		}
	}
}
