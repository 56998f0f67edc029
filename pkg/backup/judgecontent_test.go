package backup_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// smallTarGz is a tar.gz of n regular files of a few bytes each.
func smallTarGz(t require.TestingT, n int) []byte {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for i := range n {
		body := []byte(fmt.Sprintf("file %d\n", i))
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/f%02d", i), Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}))
		_, err := tw.Write(body)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write(raw.Bytes())
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return gz.Bytes()
}

// candidate writes data as a tar_gz backup with a sha256 sidecar of want
// (nil: of data itself).
func candidate(t require.TestingT, dir string, data, want []byte) backup.Candidate {
	file := filepath.Join(dir, "data-1.tar.gz")
	require.NoError(t, os.WriteFile(file, data, 0o600))
	if want == nil {
		want = data
	}
	sum := sha256.Sum256(want)
	require.NoError(t, os.WriteFile(file+".sha256", []byte(hex.EncodeToString(sum[:])+"  data-1.tar.gz\n"), 0o600))
	return backup.Candidate{Rule: instance.BackupRule{Component: "data", Path: filepath.Join(dir, "data-*.tar.gz"), Format: "tar_gz", Checksum: "sha256_sidecar"},
		Path: file, Size: int64(len(data)), MTime: time.Now()}
}

// walkAll reads every entry to the end, counting them.
func walkAll(n *int) backup.TarWalk {
	return func(tr *backup.TarReader) error {
		for {
			_, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("the walk's own wrapping: %w", err)
			}
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return err
			}
			*n++
		}
	}
}

// TestJudgeContent_WalkGetsTheVerdictOfJudge: a restore that reads a tar
// backup through JudgeContent's walk gets the same verdict as Judge's own
// read, whatever the damage (a byte flipped, a cut, a sidecar of another
// file): a stream the walk reads to its end passes exactly when Judge
// passes it, a damaged one is a finding (never the walk's own error, even
// when the walk wraps the stream's error), and a walk that stops for its
// own reasons is reported as such, never as a verdict.
func TestJudgeContent_WalkGetsTheVerdictOfJudge(t *testing.T) {
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp("", "judgecontent")
		require.NoError(rt, err)
		defer os.RemoveAll(dir)
		good := smallTarGz(rt, rapid.IntRange(1, 12).Draw(rt, "files"))
		data, want := bytes.Clone(good), []byte(nil)
		switch rapid.IntRange(0, 3).Draw(rt, "damage") {
		case 1:
			i := rapid.IntRange(0, len(data)-1).Draw(rt, "flip")
			data[i] ^= byte(rapid.IntRange(1, 255).Draw(rt, "bits"))
			want = good // the sidecar vouches for the good file
		case 2:
			data = data[:rapid.IntRange(1, len(data)-1).Draw(rt, "cut")]
			want = good
		case 3:
			want = []byte("another file")
		}
		c := candidate(rt, dir, data, want)
		judged, err := backup.Judge(ctx, c, nil, "")
		require.NoError(rt, err)
		n := 0
		failed, walkErr, err := backup.JudgeContent(ctx, c, nil, "", &backup.Staging{Tar: walkAll(&n)})
		require.NoError(rt, err)
		if walkErr != nil {
			rt.Fatalf("the walk read to the end or met the stream's error, yet its error is reported as its own: %v", walkErr)
		}
		if (len(judged) == 0) != (len(failed) == 0) {
			rt.Fatalf("Judge: %q; JudgeContent with a walk: %q", backup.Reasons(judged), backup.Reasons(failed))
		}

		// A walk that stops for its own reasons: no verdict.
		mine := errors.New("no room")
		failed, walkErr, err = backup.JudgeContent(ctx, c, nil, "", &backup.Staging{Tar: func(tr *backup.TarReader) error {
			if _, err := tr.Next(); err != nil {
				return err
			}
			return mine
		}})
		require.NoError(rt, err)
		if walkErr != nil && !errors.Is(walkErr, mine) {
			rt.Fatalf("walk error %v, want its own", walkErr)
		}
		if walkErr != nil && len(failed) > 0 {
			rt.Fatalf("a walk stopped by its own error got a verdict too: %q", backup.Reasons(failed))
		}
	})
}

// TestJudgeContent_WalkStoppingEarlyIsNoPass: a walk that returns
// without reading the stream to its end, and without an error of its
// own, does not make the backup pass.
func TestJudgeContent_WalkStoppingEarlyIsNoPass(t *testing.T) {
	c := candidate(t, t.TempDir(), smallTarGz(t, 3), nil)
	failed, walkErr, err := backup.JudgeContent(context.Background(), c, nil, "", &backup.Staging{Tar: func(tr *backup.TarReader) error {
		_, err := tr.Next()
		return err
	}})
	require.NoError(t, err)
	require.NoError(t, walkErr)
	require.NotEmpty(t, failed)
	assert.Contains(t, backup.Reasons(failed), "before the end")
}
