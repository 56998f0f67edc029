package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// The lock of an instance is the object <name>/.lock (hidden from every
// listing), created only if absent (PUT with If-None-Match: *, which the
// server decides atomically), holding its owner (host, process, a random
// token) and its expiry. What it guarantees:
//
//   - two runs never hold it at once while its holder is alive and
//     reaches the server at least once per LockTTL/3: the holder renews it
//     (a PUT conditional on the ETag it last wrote, If-Match), and a
//     second run refuses at once with ErrLocked;
//   - a holder of this host that died (SIGKILL, crash) blocks nothing:
//     the lock records the kernel's boot id, the pid namespace, the pid
//     and the process's start time, and a run of the same boot and
//     namespace that finds that process gone takes the lock over at once
//     (conditionally, as below);
//   - a holder elsewhere that died (its host lost) blocks the instance for
//     LockTTL at most: a lock not renewed for LockTTL (judged by the
//     server's Last-Modified, plus a minute for clock skew) is taken over
//     by one run only (the takeover is a PUT conditional on the stale
//     lock's ETag);
//   - what it cannot guarantee: a holder cut off from the server (or
//     stopped) for longer than LockTTL may see its lock taken over while
//     it still runs; it learns it at its next renewal and stops renewing,
//     but the store cannot stop its work. Keep LockTTL longer than any
//     pause a run may see. A server that ignores If-None-Match or
//     If-Match gives no exclusion at all (scripts/s3-up.sh checks the
//     local server; AWS S3 has them since 2024).
type lockInfo struct {
	Owner   string    `json:"owner"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Taken   time.Time `json:"taken"`
	Expires time.Time `json:"expires"`
	// Where names the holder's process exactly: the kernel's boot id,
	// its pid namespace and the process's start time, so that a lock
	// left by a process of this same boot and namespace that is gone
	// (killed) is taken over at once rather than after LockTTL, and a
	// reused pid is not taken for it.
	Where string `json:"where,omitempty"`
}

// processWhere names process pid of this host, boot and pid namespace
// ("" when /proc cannot tell).
func processWhere(pid int) string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(boot)) + "/" + ns + "/" + strconv.Itoa(pid) + "@" + processStart(pid)
}

// processStart returns the start time of process pid in clock ticks
// since boot (field 22 of /proc/<pid>/stat), "" when it does not exist.
func processStart(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces: count after its ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// deadHere reports whether the lock was taken by a process of this boot
// and pid namespace that no longer runs.
func (li lockInfo) deadHere() bool {
	if li.Where == "" || li.PID <= 0 {
		return false
	}
	mine := processWhere(os.Getpid())
	if mine == "" {
		return false
	}
	prefixOf := func(w string) string { return w[:strings.LastIndexByte(w, '/')+1] }
	if prefixOf(li.Where) != prefixOf(mine) {
		return false // another host, boot or namespace: only the TTL tells
	}
	return processWhere(li.PID) != li.Where
}

func lockKey(name string) string { return name + "/.lock" }

// takeoverSettle is how long a takeover waits for the takeovers racing
// it to land before it reads the lock back.
const takeoverSettle = 500 * time.Millisecond

// Lock takes the lock named name (one per instance) without waiting.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	if err := store.CheckKey(name); err != nil {
		return nil, err
	}
	obj := s.Object(lockKey(name))
	host, _ := os.Hostname()
	var tok [8]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, err
	}
	info := lockInfo{Owner: hex.EncodeToString(tok[:]), Host: host, PID: os.Getpid(), Taken: time.Now().UTC(), Where: processWhere(os.Getpid())}
	body := func() []byte {
		info.Expires = time.Now().UTC().Add(s.LockTTL)
		b, _ := json.Marshal(info)
		return b
	}
	put := func(ctx context.Context, match string) (string, error) {
		b := body()
		opts := minio.PutObjectOptions{ContentType: "application/json"}
		if match == "" {
			opts.SetMatchETagExcept("*")
		} else {
			opts.SetMatchETag(match)
		}
		sum := newPartSum(b)
		opts.UserMetadata = map[string]string{"X-Amz-Checksum-Sha256": sum.b64}
		up, err := s.c.PutObject(ctx, s.bucket, obj, strings.NewReader(string(b)), int64(len(b)), "", sum.hex, opts)
		return up.ETag, err
	}
	etag, err := put(ctx, "")
	if err != nil {
		if c, status := code(err); c != "PreconditionFailed" && status != 412 {
			return nil, fmt.Errorf("lock %s: %w", s.Location(lockKey(name)), s.explain(err))
		}
		// Held: take it over only when its holder stopped renewing it.
		oi, serr := s.c.StatObject(ctx, s.bucket, obj, minio.StatObjectOptions{})
		if serr != nil {
			return nil, fmt.Errorf("lock %s: %w (%v)", s.Location(lockKey(name)), store.ErrLocked, serr)
		}
		held, li := s.describeLock(ctx, obj)
		if time.Since(oi.LastModified) < s.LockTTL+s.LockSkew && !li.deadHere() {
			return nil, fmt.Errorf("lock %s: %w%s", s.Location(lockKey(name)), store.ErrLocked, held)
		}
		etag, err = put(ctx, oi.ETag)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w (taking over a lock not renewed since %s failed: %v)%s", s.Location(lockKey(name)),
				store.ErrLocked, oi.LastModified.UTC().Format(time.RFC3339), err, held)
		}
		// Some S3-compatible servers check If-Match and write in two
		// steps, so that two runs taking over the same stale lock at once
		// may both succeed (the last write stays). Once the takeovers in
		// flight have landed, the lock is ours only if it holds our token.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(takeoverSettle):
		}
		if _, now := s.describeLock(ctx, obj); now.Owner != info.Owner {
			return nil, fmt.Errorf("lock %s: %w (another run took over the stale lock at the same time)%s", s.Location(lockKey(name)), store.ErrLocked, held)
		}
	}
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				rctx, cancel := context.WithTimeout(context.Background(), s.LockTTL/3)
				mu.Lock()
				e, err := put(rctx, etag)
				if err == nil {
					etag = e
				}
				mu.Unlock()
				cancel()
				if c, status := code(err); c == "PreconditionFailed" || status == 412 || c == "NoSuchKey" || status == 404 {
					return // taken over or removed: not ours any more
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
			mu.Lock()
			defer mu.Unlock()
			s.releaseLock(obj, etag)
		})
	}, nil
}

// releaseLock removes the lock object when it is still the one this run
// wrote: its version for good (no delete marker left behind), or, in a
// bucket whose default retention keeps that version, by a delete marker.
func (s *Store) releaseLock(obj, etag string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	oi, err := s.c.StatObject(ctx, s.bucket, obj, minio.StatObjectOptions{})
	if err != nil || strings.Trim(oi.ETag, `"`) != strings.Trim(etag, `"`) {
		return
	}
	if oi.VersionID != "" && oi.VersionID != "null" {
		if s.c.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{VersionID: oi.VersionID}) == nil {
			return
		}
	}
	s.c.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{})
}

// describeLock says who holds a lock, for the refusal.
func (s *Store) describeLock(ctx context.Context, obj string) (string, lockInfo) {
	var li lockInfo
	body, _, _, err := s.c.GetObject(ctx, s.bucket, obj, minio.GetObjectOptions{})
	if err != nil {
		return "", li
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, 4096))
	if err != nil || json.Unmarshal(b, &li) != nil {
		return "", lockInfo{}
	}
	return fmt.Sprintf(" (held by process %d on %s since %s, renewed until %s)", li.PID, li.Host,
		li.Taken.Format(time.RFC3339), li.Expires.Format(time.RFC3339)), li
}

// LockHolder tells who holds the lock named name, without taking it.
func (s *Store) LockHolder(name string) (int, string, bool) {
	if store.CheckKey(name) != nil {
		return 0, "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obj := s.Object(lockKey(name))
	oi, err := s.c.StatObject(ctx, s.bucket, obj, minio.StatObjectOptions{})
	if err != nil || time.Since(oi.LastModified) >= s.LockTTL+s.LockSkew {
		return 0, "", false
	}
	body, _, _, err := s.c.GetObject(ctx, s.bucket, obj, minio.GetObjectOptions{})
	if err != nil {
		return 0, "", false
	}
	defer body.Close()
	var li lockInfo
	b, _ := io.ReadAll(io.LimitReader(body, 4096))
	if json.Unmarshal(b, &li) != nil || li.deadHere() {
		return 0, "", false
	}
	host, _ := os.Hostname()
	if li.Host != host {
		return 0, "", false // a process of another host: no pid here
	}
	return li.PID, s.Location(lockKey(name)), true
}

var _ store.LockInspector = (*Store)(nil)
