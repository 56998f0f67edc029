package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// TestLiteralPrefix_ListsEveryMatch: listing a bucket by the literal
// prefix of a key glob never misses a key the glob matches (the prefix
// is a prefix of every match), for globs with wildcards, classes and
// escapes anywhere. Each key is drawn as a match of its glob.
func TestLiteralPrefix_ListsEveryMatch(t *testing.T) {
	// token: its glob text and the texts it matches.
	tokens := map[string][]string{
		"a": {"a"}, "b": {"b"}, "-": {"-"}, "/": {"/"}, "{": {"{"}, ".": {"."},
		"*": {"", "a", "ab-", "*", "."}, "?": {"a", "?", "-"}, "[ab]": {"a", "b"}, "[^a]": {"b", "-", "*"},
		`\*`: {"*"}, `\a`: {"a"}, `\[`: {"["},
	}
	var names []string
	for k := range tokens {
		names = append(names, k)
	}
	rapid.Check(t, func(t *rapid.T) {
		toks := rapid.SliceOfN(rapid.SampledFrom(names), 1, 10).Draw(t, "glob")
		var glob, key strings.Builder
		for i, tok := range toks {
			glob.WriteString(tok)
			key.WriteString(rapid.SampledFrom(tokens[tok]).Draw(t, "part"+string(rune('0'+i))))
		}
		ok, err := filepath.Match(glob.String(), key.String())
		if err != nil || !ok {
			t.Fatalf("test generator: %q does not match %q (%v)", glob.String(), key.String(), err)
		}
		if p := literalPrefix(glob.String()); !strings.HasPrefix(key.String(), p) {
			t.Fatalf("glob %q matches %q, but its literal prefix %q does not start it", glob.String(), key.String(), p)
		}
	})
	for glob, want := range map[string]string{"p/{x}/db-*.dump": "p/{x}/db-", `a\*b/*`: "a*b/", "*": "", "a/b?c": "a/b", "x[ab]": "x"} {
		if got := literalPrefix(glob); got != want {
			t.Errorf("literalPrefix(%q) = %q, want %q", glob, got, want)
		}
	}
}

// TestSQLite_FromObject: a SQLite backup in object storage is checked
// through an unlinked scratch copy (SQLite reads pages, not a stream),
// its checksum taken on the way: a good one passes, one cut short fails
// its format check, a wrong sidecar its checksum.
func TestSQLite_FromObject(t *testing.T) {
	c := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	p := filepath.Join(t.TempDir(), "app.db")
	db, err := sql.Open("sqlite", "file:"+p)
	require.NoError(t, err)
	_, err = db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); INSERT INTO t (v) SELECT randomblob(5000) FROM (SELECT 1 UNION SELECT 2 UNION SELECT 3)")
	require.NoError(t, err)
	require.NoError(t, db.Close())
	whole, err := os.ReadFile(p)
	require.NoError(t, err)
	put := func(key string, data []byte) {
		_, err := c.PutObject(context.Background(), bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	side := func(key string, data []byte) []byte {
		s := sha256.Sum256(data)
		return []byte(hex.EncodeToString(s[:]) + "  " + filepath.Base(key) + "\n")
	}
	put("good/app.db", whole)
	put("good/app.db.sha256", side("good/app.db", whole))
	put("cut/app.db", whole[:len(whole)-4096])
	put("cut/app.db.sha256", side("cut/app.db", whole[:len(whole)-4096]))
	put("bad/app.db", whole)
	put("bad/app.db.sha256", side("bad/app.db", []byte("other")))
	rem := newRemotes(s3test.Settings(t))
	ctx := context.Background()

	res, err := checkBackup(ctx, rem, "s3://"+bucket+"/good/app.db", FormatSQLite, true)
	require.NoError(t, err)
	assert.Nil(t, res.format)
	assert.Nil(t, res.checksum)
	res, err = checkBackup(ctx, rem, "s3://"+bucket+"/cut/app.db", FormatSQLite, true)
	require.NoError(t, err)
	var fe *FormatError
	assert.ErrorAs(t, res.format, &fe)
	assert.Nil(t, res.checksum)
	res, err = checkBackup(ctx, rem, "s3://"+bucket+"/bad/app.db", FormatSQLite, true)
	require.NoError(t, err)
	assert.Nil(t, res.format)
	var ce *ChecksumError
	assert.ErrorAs(t, res.checksum, &ce)
}
