package s3_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// A plain DELETE (no version id) is allowed by S3 even on an object
// under Object Lock: it puts a delete marker over the locked version,
// which stays. Such a delete by hand must hide nothing from fleetsafe:
// Stat, Open and List still give the newest version that holds data,
// flagged Hidden; the store's own Remove still refuses the retained
// version and removes everything (markers included) once it may.
func TestS3_DeleteMarkerHidesNothing(t *testing.T) {
	ctx := context.Background()
	bucket := s3test.Bucket(t, true)
	st := s3test.Store(t, bucket, "arch")
	c := s3test.Client(t)
	const locked, plain, gone = "i/a.tar.zst", "i/a.tombstone.json", "i/b.tar.zst"
	for key, data := range map[string]string{locked: "archive", plain: "tomb-v1", gone: "other"} {
		if err := st.Put(ctx, key, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Put(ctx, plain, []byte("tomb-v2")); err != nil { // two versions under the marker
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := st.Retain(ctx, locked, "governance", until, false); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{locked, plain} {
		if err := c.RemoveObject(ctx, bucket, "arch/"+key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatalf("plain DELETE of %s (a delete marker) refused: %v", key, err)
		}
	}
	if _, err := c.StatObject(ctx, bucket, "arch/"+locked, minio.StatObjectOptions{}); err == nil {
		t.Fatal("the server did not put a delete marker: the test sees nothing")
	}

	for key, want := range map[string]string{locked: "archive", plain: "tomb-v2"} {
		info, err := st.Stat(ctx, key)
		if err != nil || !info.Hidden || info.Size != int64(len(want)) {
			t.Errorf("Stat %s under a delete marker = %+v, %v; want its newest data, Hidden", key, info, err)
		}
		r, err := st.Open(ctx, key)
		if err != nil {
			t.Fatalf("Open %s under a delete marker: %v", key, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(got) != want {
			t.Errorf("Open %s under a delete marker read %q, %v; want %q", key, got, err, want)
		}
	}
	list, err := st.List(ctx, "i/")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]store.Info{}
	for _, i := range list {
		seen[i.Key] = i
	}
	if len(list) != 3 || !seen[locked].Hidden || !seen[plain].Hidden || seen[gone].Hidden || seen[gone].Key != gone {
		t.Errorf("List under delete markers = %+v; want all three, the two deleted by hand Hidden", list)
	}

	// The store's own Remove: the retained version is still refused; the
	// other goes for good, its marker and older versions too.
	// The marker goes (it held nothing): the archive is visible again.
	if err := st.Remove(ctx, locked); !errors.Is(err, store.ErrRetained) {
		t.Errorf("Remove of a retained archive under a delete marker: %v, want ErrRetained", err)
	}
	if info, err := st.Stat(ctx, locked); err != nil || info.Hidden {
		t.Errorf("Stat of the retained archive after a refused Remove = %+v, %v; want it visible again", info, err)
	}
	if err := st.Remove(ctx, plain); err != nil {
		t.Fatalf("Remove under a delete marker: %v", err)
	}
	if _, err := st.Stat(ctx, plain); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat after Remove: %v, want ErrNotExist", err)
	}
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "arch/" + plain, WithVersions: true}) {
		t.Errorf("Remove left version %s (delete marker %v) of %s", o.VersionID, o.IsDeleteMarker, plain)
	}
	if list, _ := st.List(ctx, "i/"); len(list) != 2 {
		t.Errorf("List after Remove = %+v", list)
	}
	// Only markers left (every version removed by hand but a marker): gone.
	if err := c.RemoveObject(ctx, bucket, "arch/"+gone, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "arch/" + gone, WithVersions: true}) {
		if !o.IsDeleteMarker {
			if err := c.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := st.Stat(ctx, gone); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat of a key with only a delete marker left: %v, want ErrNotExist", err)
	}
	if list, _ := st.List(ctx, "i/"); len(list) != 1 || list[0].Key != locked {
		t.Errorf("List with only a marker left for %s = %+v", gone, list)
	}
}
