package softdelete

import (
	"os"
	"testing"
)

// testSpool makes the unlinked files a collector's records spill into.
func testSpool(t *testing.T) func() (*os.File, error) {
	dir := t.TempDir()
	return func() (*os.File, error) {
		f, err := os.CreateTemp(dir, "files-*.spool")
		if err != nil {
			return nil, err
		}
		return f, os.Remove(f.Name())
	}
}
