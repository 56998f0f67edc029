package s3_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/encrypted"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// Versions lists every version of one key (not of keys it prefixes),
// delete markers included, the data versions newest first, the current
// one flagged;
// OpenVersion reads each, also under the encrypted store, which
// decrypts the version it reads. A bucket that keeps no versions lists
// none.
func TestS3_VersionsAndOpenVersion(t *testing.T) {
	ctx := context.Background()
	bucket := s3test.Bucket(t, true)
	st := s3test.Store(t, bucket, "arch")
	c := s3test.Client(t)
	const key = "i/a.tar.zst"
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	enc := encrypted.Wrap(st, encrypted.Keys{Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}})
	w, err := enc.Create(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "recorded")
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, key+".sha256", []byte("sidecar")); err != nil { // a key it prefixes
		t.Fatal(err)
	}
	if err := c.RemoveObject(ctx, bucket, "arch/"+key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, key, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]store.Versioner{"s3": st, "encrypted": enc.(store.Versioner)} {
		vs, err := v.Versions(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		// Where a marker falls among the data versions is the server's
		// (Versity's gateway lists markers apart, with finer dates).
		data := store.DataVersions(vs)
		if len(vs) != 3 || len(data) != 2 || !data[0].Latest || data[1].Latest || data[0].Size != 6 {
			t.Fatalf("%s: Versions = %+v; want the forged data version, then the recorded one, and a marker", name, vs)
		}
		want := map[string]string{data[0].ID: "forged", data[1].ID: "recorded"}
		if name == "s3" {
			want[data[1].ID] = "age-encryption.org/v1" // ciphertext as stored
		}
		for vid, w := range want {
			r, err := v.OpenVersion(ctx, key, vid)
			if err != nil {
				t.Fatalf("%s: OpenVersion %s: %v", name, vid, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || len(got) < len(w) || string(got[:len(w)]) != w {
				t.Errorf("%s: OpenVersion %s read %.40q, %v; want %q", name, vid, got, err, w)
			}
		}
		if _, err := v.OpenVersion(ctx, key, data[1].ID+"x"); err == nil {
			t.Errorf("%s: OpenVersion of a version that is not there: no error", name)
		}
	}

	plain := s3test.Store(t, s3test.Bucket(t, false), "arch")
	if err := plain.Put(ctx, key, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if vs, err := plain.Versions(ctx, key); err != nil || vs != nil {
		t.Errorf("Versions in a bucket that keeps none = %+v, %v; want none", vs, err)
	}
	dir, _ := store.NewFile(t.TempDir())
	if _, err := encrypted.Wrap(dir, encrypted.Keys{}).(store.Versioner).OpenVersion(ctx, key, "v"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("OpenVersion of an encrypted directory store: %v, want ErrNotExist", err)
	}
}
