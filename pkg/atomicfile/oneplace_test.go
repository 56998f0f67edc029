package atomicfile_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestOnePlace: files are replaced atomically by this package only; no
// other non-test code of the project renames a temporary file into place
// with os.Rename (three such writers differed: one skipped the directory
// fsync, one never fsynced). The SQLite copy is the one exception: SQLite
// itself writes its temporary file, which is renamed only to a name that
// does not exist yet.
func TestOnePlace(t *testing.T) {
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(here), "..", "..")
	allowed := map[string]bool{
		filepath.Join("pkg", "atomicfile", "atomicfile.go"): true,
		filepath.Join("pkg", "sqlitedb", "copy.go"):         true,
		// Moves a database and its companions to a name checked free
		// first (quarantine, restore): a move, never a replacement.
		filepath.Join("pkg", "sqlitedb", "move.go"): true,
	}
	var found []string
	for _, top := range []string{"pkg", "internal", "cmd", "modules"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if strings.Contains(string(data), "os.Rename(") && !allowed[rel] {
				found = append(found, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(found) > 0 {
		t.Errorf("os.Rename in %v: replace files with atomicfile.WriteFile or atomicfile.Create", found)
	}
}
