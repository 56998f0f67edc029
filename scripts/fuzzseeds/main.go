// Command fuzzseeds writes the seed corpora under pkg/*/testdata/fuzz/ from
// real inputs (pg_dump output, a fleetsafe archive, tar, zip and layout
// files). Run it from the repository root: go run ./scripts/fuzzseeds
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

func write(dir, name string, lines ...string) {
	os.MkdirAll(dir, 0o755)
	s := "go test fuzz v1\n"
	for _, l := range lines {
		s += l + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
		panic(err)
	}
}

func b(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return "[]byte(" + strconv.Quote(string(data)) + ")"
}

func main() {
	write("pkg/pgdump/testdata/fuzz/FuzzVerify", "real-pg_dump-Fc", b("pkg/pgdump/testdata/small.dump"))
	write("pkg/pgdump/testdata/fuzz/FuzzVerify", "real-pg_dump-Fc-Z0", b("pkg/pgdump/testdata/small-uncompressed.dump"))
	write("pkg/archive/testdata/fuzz/FuzzVerifyArchive", "real-archive", b("pkg/archive/testdata/seed.tar.zst"))
	write("pkg/archive/testdata/fuzz/FuzzDecodeManifest", "real-manifest", b("pkg/archive/testdata/seed.manifest.json"))
	write("pkg/softdelete/testdata/fuzz/FuzzReadTombstone", "real-tombstone", b("pkg/softdelete/testdata/seed.tombstone.json"))
	write("pkg/instance/testdata/fuzz/FuzzParseLayout", "tracim", b("examples/layouts/tracim.yml"))
	write("pkg/instance/testdata/fuzz/FuzzParseLayout", "nextcloud", b("examples/layouts/nextcloud.yml"))
	for i, f := range []string{"small.tar", "small.tar.gz", "small.tar.zst", "small.zip", "small.sql"} {
		write("pkg/backup/testdata/fuzz/FuzzCheckFile", "real-"+f, fmt.Sprintf("byte(%s)", strconv.QuoteRune(rune(i))), b("pkg/backup/testdata/"+f))
	}
	write("pkg/backup/testdata/fuzz/FuzzCheckFile", "real-pg_dump-Fc", "byte('\\x05')", b("pkg/pgdump/testdata/small.dump"))
	write("pkg/backup/testdata/fuzz/FuzzPlainDump", "real-pg_dump-Fp", b("pkg/backup/testdata/small.sql"))
}
