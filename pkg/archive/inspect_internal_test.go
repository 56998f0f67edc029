package archive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// TestInspect_ParallelFindingsInWalkOrder checks that the metadata
// inspections, run on every core after the walk, record their findings
// interleaved with the walk's own (special files) exactly in walk order,
// and that small files are hashed.
func TestInspect_ParallelFindingsInWalkOrder(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "inst")
	require.NoError(t, os.Mkdir(dir, 0o755))
	var want []string
	for i := range 2000 {
		p := filepath.Join(dir, fmt.Sprintf("f%04d", i))
		switch i % 150 {
		case 7:
			require.NoError(t, syscall.Mkfifo(p, 0o600))
			want = append(want, LossSpecialFiles+" "+p)
			continue
		case 11:
			require.NoError(t, os.WriteFile(p, []byte("x"), 0o644))
			if err := unix.Setxattr(p, "user.test", []byte("1"), 0); errors.Is(err, unix.ENOTSUP) {
				t.Skip("no user extended attributes on", parent)
			} else {
				require.NoError(t, err)
			}
			want = append(want, LossXattr+" "+p)
			continue
		}
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o644))
	}
	l, err := instance.ParseLayout([]byte("app: t\ncomponents:\n  - name: data\n    type: dir\n    path: "+parent+"/{name}\n"), "t.yml")
	require.NoError(t, err)
	c := NewCollector([]string{LossXattr, LossSpecialFiles})
	defer c.Close()
	c.HashSmall = true
	c.KeepRecords(testSpool(t))
	require.NoError(t, c.AddComponent(targetOf(t, l, 0, "inst")))
	require.NoError(t, c.Err("inst"))
	// Losses come out in path order (findings_log.go), which is also
	// the walk's order of these names.
	var got []string
	require.NoError(t, c.eachLoss(func(f Finding) error {
		got = append(got, f.Kind+" "+f.Path)
		return nil
	}))
	assert.Equal(t, want, got)
	assert.Zero(t, c.findings.total)
	require.NoError(t, c.each(func(s *source, _ int64) error {
		if s.entry.Type == "file" {
			// sha256 of "x"
			require.Equal(t, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881", s.entry.SHA256, s.rel)
		}
		return nil
	}))
}
