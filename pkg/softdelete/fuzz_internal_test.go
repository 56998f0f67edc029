package softdelete

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzReadTombstone(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "seed.tombstone.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"id": "", "instance": "x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "t.tombstone.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ts, err := ReadTombstone(path)
		if err == nil && (ts.ID == "" || ts.Instance == "") {
			t.Fatalf("accepted a tombstone without id or instance")
		}
	})
}
