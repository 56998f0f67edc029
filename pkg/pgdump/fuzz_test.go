package pgdump_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// FuzzVerify feeds the custom-format reader arbitrary bytes, seeded with
// real pg_dump output (testdata/fuzz/FuzzVerify). It must never panic,
// hang or allocate more than the input justifies; a successful read must
// have come from a file that starts like a dump.
func FuzzVerify(f *testing.F) {
	for _, name := range []string{"testdata/small.dump", "testdata/small-uncompressed.dump"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var sum *pgdump.Summary
		var err error
		fleettest.Deadline(t, 10*time.Second, func() { sum, err = pgdump.Verify(bytes.NewReader(data)) })
		if err == nil && (sum == nil || !bytes.HasPrefix(data, []byte("PGDMP"))) {
			t.Fatalf("accepted a file that is not a dump: %q", data[:min(len(data), 16)])
		}
	})
}
