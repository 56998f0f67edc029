package s3_test

import (
	"context"
	"crypto/rand"
	"io"
	"testing"

	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// BenchmarkS3_WriteRead uploads 128 MiB through the store's writer (in
// 1 MiB writes, as the archive is written) and reads it back whole, as a
// soft delete does: the store's share of bench/s3, for pprof
// (go test -run '^$' -bench S3_WriteRead -cpuprofile cpu.out).
func BenchmarkS3_WriteRead(b *testing.B) {
	ctx := context.Background()
	bucket := s3test.Bucket(b, false)
	st, err := s3store.Open(ctx, "s3://"+bucket+"/bench", s3test.Settings(b))
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	const mib = 128
	b.SetBytes(mib << 20)
	for i := 0; b.Loop(); i++ {
		key := "inst/" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + ".tar.zst"
		w, err := st.Create(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		for range mib {
			if _, err := w.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		r, err := st.Open(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != mib<<20 {
			b.Fatalf("read back %d bytes: %v", n, err)
		}
		r.Close()
	}
}
