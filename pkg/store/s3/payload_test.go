package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fleetsafe/fleetsafe/pkg/store"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// damaging flips one byte of the body of the second part uploaded, as a
// network that damages a request on the way would.
type damaging struct{ parts atomic.Int32 }

func (d *damaging) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "2" && r.Body != nil {
		d.parts.Add(1)
		data, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		data[len(data)/2] ^= 1
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(data))
	}
	return http.DefaultTransport.RoundTrip(r)
}

// Parts go as UNSIGNED-PAYLOAD (the server does not hash them a second
// time for the signature), but each carries its SHA-256 in the signed
// x-amz-checksum-sha256 header, which the server checks: a part damaged
// on the way is refused, the upload fails, nothing is visible under the
// key and no upload is left behind.
func TestS3_DamagedPartRefused(t *testing.T) {
	ctx := context.Background()
	bucket := s3test.Bucket(t, false)
	set := s3test.Settings(t)
	set.PartSize = 5 << 20
	d := &damaging{}
	st, err := s3store.Open(ctx, "s3://"+bucket+"/p", s3store.WithTransport(set, d))
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.Create(ctx, "inst/a.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var werr error
	for range 16 {
		if _, werr = w.Write(chunk); werr != nil {
			break
		}
	}
	if werr == nil {
		werr = w.Commit(ctx)
	} else if err := w.Abort(); err != nil {
		t.Errorf("Abort after a refused part: %v", err)
	}
	if d.parts.Load() == 0 {
		t.Fatal("no part 2 was sent")
	}
	if werr == nil {
		t.Fatal("an upload with a part damaged on the way was committed")
	}
	if !strings.Contains(werr.Error(), "part 2") || !strings.Contains(strings.ToLower(werr.Error()), "checksum") && !strings.Contains(werr.Error(), "BadDigest") {
		t.Errorf("the error does not say which part and why: %v", werr)
	}
	if _, err := st.Stat(ctx, "inst/a.tar.zst"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("an object is visible after a refused part: %v", err)
	}
	for u := range s3test.Client(t).ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err == nil {
			t.Errorf("upload left behind: %s", u.Key)
		}
	}
}
