package softdelete

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// hostileTree fills dir with a random tree whose links all aim at victim:
// symlinks to its files and directories (absolute and relative, climbing
// with ..), hard links to its files, links to links, FIFOs.
func hostileTree(t *testing.T, rng *rand.Rand, dir, victim string, depth int) {
	t.Helper()
	n := 2 + rng.IntN(5)
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("e%d-%d", depth, i))
		rel, err := filepath.Rel(dir, victim)
		require.NoError(t, err)
		switch k := rng.IntN(8); {
		case k == 0 && depth < 4:
			require.NoError(t, os.Mkdir(p, 0o755))
			hostileTree(t, rng, p, victim, depth+1)
		case k == 1:
			require.NoError(t, os.Symlink(victim, p))
		case k == 2:
			require.NoError(t, os.Symlink(filepath.Join(rel, "sub"), p))
		case k == 3:
			require.NoError(t, os.Symlink(filepath.Join(victim, "f.txt"), p))
		case k == 4:
			require.NoError(t, os.Link(filepath.Join(victim, "f.txt"), p))
		case k == 5:
			require.NoError(t, syscall.Mkfifo(p, 0o600))
		case k == 6:
			require.NoError(t, os.Symlink(strings.Repeat("../", depth+3), p))
		default:
			require.NoError(t, os.WriteFile(p, []byte(p), 0o444))
		}
	}
}

// Random trees of links pointing out of the quarantine: removal takes
// the tree, never what its links point to.
func TestRemoveTree_NeverFollowsLinks(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	for round := range 20 {
		root := t.TempDir()
		victim := filepath.Join(root, "victim")
		require.NoError(t, os.MkdirAll(filepath.Join(victim, "sub"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(victim, "f.txt"), []byte("live"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(victim, "sub", "g.txt"), []byte("live"), 0o644))
		id := fmt.Sprintf("20260101T000000Z-%08x", round)
		parent := filepath.Join(root, "srv", "app", "acme")
		entry := filepath.Join(parent, TrashDir, id, "data")
		require.NoError(t, os.MkdirAll(entry, 0o700))
		hostileTree(t, rng, entry, victim, 0)
		before := fleettest.Tree(t, victim)

		e, err := openTrash(parent, id)
		require.NoError(t, err, "seed %d round %d", seed, round)
		require.NoError(t, e.markPurging())
		require.NoError(t, e.remove(), "seed %d round %d", seed, round)
		e.close()
		_, err = os.Lstat(filepath.Dir(entry) + PurgingSuffix)
		assert.True(t, os.IsNotExist(err), "seed %d round %d: the tree is gone", seed, round)
		after := fleettest.Tree(t, victim)
		// A hard link going away lowers the link count only: contents stay.
		assert.Equal(t, before, after, "seed %d round %d: nothing outside the quarantine changed", seed, round)
	}
}

// The trash directory itself being a mount point is refused.
func TestOpenTrash_TrashIsAMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	parent := t.TempDir()
	trash := filepath.Join(parent, TrashDir)
	require.NoError(t, os.Mkdir(trash, 0o700))
	other := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(other, "id1", "data"), 0o700))
	out, err := exec.Command("mount", "--bind", other, trash).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() { _ = exec.Command("umount", "-l", trash).Run() })
	_, err = openTrash(parent, "id1")
	var mc *MountCrossingError
	require.ErrorAs(t, err, &mc)
	assert.Equal(t, []string{trash}, mc.Mounts)
	_, err = os.Stat(filepath.Join(other, "id1", "data"))
	assert.NoError(t, err)
}
