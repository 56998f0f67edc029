package s3_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
	"github.com/fleetsafe/fleetsafe/pkg/store/storetest"
)

// The store's contract (pkg/store/storetest) against the real server: in
// a plain bucket, and in a bucket with Object Lock (versioned: a removal
// must remove every version, not leave a delete marker over them).
func TestS3_Contract(t *testing.T) {
	for _, lock := range []bool{false, true} {
		t.Run(fmt.Sprintf("objectlock=%v", lock), func(t *testing.T) {
			t.Parallel() // each check waits on the server, not on a core
			bucket := s3test.Bucket(t, lock)
			var n atomic.Int64
			storetest.Run(t, func(t *testing.T) store.Store {
				return s3test.Store(t, bucket, fmt.Sprintf("run-%d/sub", n.Add(1)))
			})
		})
	}
}
