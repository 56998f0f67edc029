package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/fleetsafe/fleetsafe/pkg/store"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// An object retained by governance or held by a legal hold cannot be
// removed: not by the store's Remove (a *RetainedError saying until
// when), and not by hand, version by version, with a plain S3 client; it
// stays readable. After its date it goes.
func TestS3_RetainedRefusesRemoval(t *testing.T) {
	ctx := context.Background()
	bucket := s3test.Bucket(t, true)
	st := s3test.Store(t, bucket, "arch")
	if err := st.CheckObjectLock(ctx); err != nil {
		t.Fatalf("CheckObjectLock on a bucket with Object Lock: %v", err)
	}
	c := s3test.Client(t)
	// Each object is retained for 6 s (whole seconds: 5 s at least), the
	// time its refusals below take even on a loaded machine (3 s left
	// less than 2 s for a few requests); the test then waits for the
	// latest date to pass, not for a fixed delay.
	const retain = 6 * time.Second
	var latest time.Time
	for _, tc := range []struct {
		key  string
		mode string
		hold bool
	}{{"i/a.tar.zst", "governance", false}, {"i/b.tar.zst", "compliance", false}, {"i/c.tar.zst", "", true}} {
		if err := st.Put(ctx, tc.key, []byte("archive")); err != nil {
			t.Fatal(err)
		}
		until := time.Now().Add(retain).Truncate(time.Second)
		latest = until
		if err := st.Retain(ctx, tc.key, tc.mode, until, tc.hold); err != nil {
			t.Fatalf("Retain %s: %v", tc.key, err)
		}
		r, err := st.Retention(ctx, tc.key)
		if err != nil || r.LegalHold != tc.hold || (tc.mode != "" && !r.Until.Equal(until)) || !r.Locked(time.Now()) {
			t.Fatalf("Retention %s = %+v, %v", tc.key, r, err)
		}
		err = st.Remove(ctx, tc.key)
		var re *s3store.RetainedError
		if !errors.Is(err, store.ErrRetained) || !errors.As(err, &re) || re.Retention != r {
			t.Fatalf("Remove of a retained object: %v", err)
		}
		if tc.mode != "" && !strings.Contains(err.Error(), until.UTC().Format(time.RFC3339)) {
			t.Errorf("the refusal does not say until when: %v", err)
		}
		// By hand, every version, without bypass.
		for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "arch/" + tc.key, WithVersions: true}) {
			if err := c.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID}); err == nil {
				t.Fatalf("the server removed version %s of retained %s", o.VersionID, tc.key)
			}
		}
		if _, err := st.Stat(ctx, tc.key); err != nil {
			t.Fatalf("retained object gone: %v", err)
		}
	}
	time.Sleep(time.Until(latest) + 500*time.Millisecond)
	for _, k := range []string{"i/a.tar.zst", "i/b.tar.zst"} {
		if err := st.Remove(ctx, k); err != nil {
			t.Errorf("Remove after the retention date: %v", err)
		}
	}
	if err := st.Remove(ctx, "i/c.tar.zst"); !errors.Is(err, store.ErrRetained) {
		t.Errorf("Remove under a legal hold after the date: %v", err)
	}
}

// A bucket without Object Lock is named as such, with how to enable it.
func TestS3_CheckObjectLock_Refuses(t *testing.T) {
	bucket := s3test.Bucket(t, false)
	err := s3test.Store(t, bucket, "").CheckObjectLock(context.Background())
	var le *s3store.ObjectLockError
	if !errors.As(err, &le) || !strings.Contains(le.Hint(), "--object-lock-enabled-for-bucket") {
		t.Fatalf("CheckObjectLock on a bucket without it: %v", err)
	}
}
