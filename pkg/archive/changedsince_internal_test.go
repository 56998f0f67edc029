package archive

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// TestChangedSince_ManyEntriesInWalkOrder checks the late-change re-stat,
// which runs in chunks on every core: changes spread over every chunk are
// all found, reported in walk order, at most 20 and then "and maybe more";
// a gone file and a replaced one are named as such.
func TestChangedSince_ManyEntriesInWalkOrder(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "inst")
	require.NoError(t, os.Mkdir(dir, 0o755))
	const n = 5000
	for i := range n {
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), []byte("x"), 0o644))
	}
	l, err := instance.ParseLayout([]byte("app: t\ncomponents:\n  - name: data\n    type: dir\n    path: "+parent+"/{name}\n"), "t.yml")
	require.NoError(t, err)
	defer func(m int) { spoolMemMax = m }(spoolMemMax)
	spoolMemMax = 64 << 10
	c := NewCollector(nil)
	defer c.Close()
	c.KeepRecords(testSpool(t))
	require.NoError(t, c.AddComponent(targetOf(t, l, 0, "inst")))
	require.Equal(t, n+1, c.entries)
	require.NotNil(t, c.spool.f, "5,000 records spill into a file past 64 KiB")
	assert.Empty(t, c.ChangedSince(nil))

	// Three changes, one near each end and one in the middle.
	idx := []int{3, n / 2, n - 2}
	require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", idx[0])), []byte("longer"), 0o644))
	require.NoError(t, os.Remove(filepath.Join(dir, fmt.Sprintf("f%05d", idx[1]))))
	// Replaced: a new file renamed over it (a new inode).
	require.NoError(t, os.WriteFile(filepath.Join(parent, "new"), []byte("y"), 0o644))
	require.NoError(t, os.Rename(filepath.Join(parent, "new"), filepath.Join(dir, fmt.Sprintf("f%05d", idx[2]))))
	got := c.ChangedSince(nil)
	// The directory itself changed too (entries removed and added).
	require.Len(t, got, 4, "%q", got)
	assert.Equal(t, dir+": modified (mtime)", got[0])
	assert.Contains(t, got[1], fmt.Sprintf("f%05d: ", idx[0]))
	assert.Contains(t, got[1], "size 1, now 6")
	assert.Equal(t, filepath.Join(dir, fmt.Sprintf("f%05d", idx[1]))+" is gone", got[2])
	assert.Contains(t, got[3], fmt.Sprintf("f%05d: replaced by another file", idx[2]))

	// Many changes in every chunk: the first 20 in walk order, then a note.
	for i := 0; i < n; i += 97 {
		require.NoError(t, os.Remove(filepath.Join(dir, fmt.Sprintf("f%05d", i))))
	}
	got = c.ChangedSince(nil)
	require.Len(t, got, 21)
	assert.Equal(t, "and maybe more", got[20])
	assert.Equal(t, dir+": modified (mtime)", got[0])
	var prev string
	for _, g := range got[1:20] {
		assert.Greater(t, g, prev, "walk order")
		prev = g
	}
	assert.Equal(t, filepath.Join(dir, "f00000")+" is gone", got[1])
}
