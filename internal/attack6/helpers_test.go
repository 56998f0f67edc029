// Package attack6 holds hostile tests of the promises about archives in
// object storage (delete markers, forged versions, suspended versioning),
// the quarantine's own retention record, orphan RESTORE.md clean-up and
// restore with relocate. Modules run in-process (CallModule) against the
// real local S3 server (scripts/s3-up.sh) and real files; each test names
// the promise it attacks and fails while that promise is broken.
package attack6

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// s3fx is one host whose archive store is a prefix of a fresh bucket.
type s3fx struct {
	f      *fleettest.Fleet
	set    s3store.Settings
	c      *minio.Client
	bucket string
	prefix string
}

func newS3fx(t *testing.T, lock bool, names ...string) *s3fx {
	t.Helper()
	x := &s3fx{set: s3test.Settings(t), c: s3test.Client(t), bucket: s3test.Bucket(t, lock), prefix: "fleet"}
	x.f = fleettest.NewSpec(t, fleettest.Spec{Names: names})
	return x
}

func (x *s3fx) args(kv ...any) []any {
	return append([]any{"archive_store", "s3://" + x.bucket + "/" + x.prefix,
		"s3_endpoint", x.set.Endpoint, "s3_region", x.set.Region, "s3_access_key", x.set.AccessKey,
		"s3_secret_key", x.set.SecretKey, "s3_path_style", "yes"}, kv...)
}

// key returns the object key of an s3:// path of this bucket.
func (x *s3fx) key(p string) string { return strings.TrimPrefix(p, "s3://"+x.bucket+"/") }

// removeEveryVersion removes every version of key (data and delete
// markers) by its id, as someone allowed to delete versions can for an
// object no lock protects.
func (x *s3fx) removeEveryVersion(t *testing.T, key string) {
	t.Helper()
	n := 0
	for o := range x.c.ListObjects(context.Background(), x.bucket, minio.ListObjectsOptions{Prefix: key, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatalf("list versions of %s: %v", key, o.Err)
		}
		if o.Key != key {
			continue
		}
		if err := x.c.RemoveObject(context.Background(), x.bucket, key, minio.RemoveObjectOptions{VersionID: o.VersionID}); err != nil {
			t.Fatalf("remove version %s of %s: %v", o.VersionID, key, err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no version of %s to remove", key)
	}
}

// plainDelete is a DELETE without a version id, as an operator types it.
func (x *s3fx) plainDelete(t *testing.T, key string) {
	t.Helper()
	if err := x.c.RemoveObject(context.Background(), x.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("plain DELETE %s: %v", key, err)
	}
	if _, err := x.c.StatObject(context.Background(), x.bucket, key, minio.StatObjectOptions{}); err == nil {
		t.Fatalf("%s still current after a plain DELETE: the attack is not tried", key)
	}
}

// put writes data as a new version of key, by hand (no condition).
func (x *s3fx) put(t *testing.T, key string, data []byte) {
	t.Helper()
	if _, err := x.c.PutObject(context.Background(), x.bucket, key, strings.NewReader(string(data)), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (x *s3fx) get(t *testing.T, key, version string) []byte {
	t.Helper()
	r, err := x.c.GetObject(context.Background(), x.bucket, key, minio.GetObjectOptions{VersionID: version})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("get %s@%s: %v", key, version, err)
	}
	return b
}

// keys lists the keys under prefix with how many data versions and
// delete markers each has.
func (x *s3fx) versions(t *testing.T, prefix string) map[string][2]int {
	t.Helper()
	m := map[string][2]int{}
	for o := range x.c.ListObjects(context.Background(), x.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		v := m[o.Key]
		if o.IsDeleteMarker {
			v[1]++
		} else {
			v[0]++
		}
		m[o.Key] = v
	}
	return m
}

func statOpts() minio.StatObjectOptions { return minio.StatObjectOptions{} }
