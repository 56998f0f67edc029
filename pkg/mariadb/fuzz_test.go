package mariadb_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// FuzzDump reads arbitrary bytes, seeded with a real dump whole and cut,
// through VerifyDump and GuardDump: never a panic or a hang; what the
// guard sends is the input unchanged (without DEFINER clauses to
// rewrite): all of it when it passes, a start of it when it refuses.
func FuzzDump(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "small.sql"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte("-- MariaDB dump\nDELIMITER ;;\nCREATE PROCEDURE p() BEGIN SELECT 1; END;;\nDELIMITER ;\n-- Dump completed\n"))
	f.Add([]byte("INSERT INTO t VALUES ('a\\'; DROP DATABASE x; --');\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = mariadb.VerifyDump(strings.NewReader(string(b)))
		r, refused := mariadb.GuardDump("fuzz.sql", strings.NewReader(string(b)))
		out, err := io.ReadAll(r)
		rerr := refused()
		if strings.Contains(strings.ToLower(string(b)), "definer") {
			return // rewritten, not compared
		}
		switch {
		case rerr == nil && err == nil && string(out) != string(b):
			t.Fatalf("passed, but altered: %q", out)
		case !strings.HasPrefix(string(b), string(out)):
			t.Fatalf("what was sent is not the start of the input: %q", out)
		}
	})
}
