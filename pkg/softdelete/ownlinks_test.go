package softdelete_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// fewChecks runs rapid with n checks unless -rapid.checks was given: each
// check here soft deletes and restores a real instance.
func fewChecks(t *testing.T, n int) {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if set {
		return
	}
	old := flag.Lookup("rapid.checks").Value.String()
	require.NoError(t, flag.Set("rapid.checks", strconv.Itoa(n)))
	t.Cleanup(func() { _ = flag.Set("rapid.checks", old) })
}

// linkGroup is one file of acme with several names, in config and data.
type linkGroup struct{ names [][2]string } // component, name inside it

func (g linkGroup) path(base func(string) string, i int) string {
	return filepath.Join(base(g.names[i][0]), g.names[i][1])
}

// TestOwnLinks_Property: acme's files hard-linked among themselves, inside
// a component and across config and data, in any shape. The soft delete
// accepts them; a restore renames the quarantine back, never passing it
// over, and every link comes back. When, in quarantine, one name of a file
// also gets a hard link outside the instance (in globex's data), that
// component's quarantined copy is passed over with a note naming the file
// and its link count, and no restored file of acme shares globex's inode.
func TestOwnLinks_Property(t *testing.T) {
	fewChecks(t, 6)
	ctx := context.Background()
	rapid.Check(t, func(rt *rapid.T) {
		f := fleettest.New(t, false, "acme", "globex")
		live := func(c string) string { return f.Path(c, "acme") }
		var groups []linkGroup
		for gi := range rapid.IntRange(1, 3).Draw(rt, "groups") {
			n := rapid.IntRange(2, 4).Draw(rt, "names")
			var g linkGroup
			for i := range n {
				c := rapid.SampledFrom([]string{"config", "data"}).Draw(rt, "component")
				g.names = append(g.names, [2]string{c, fmt.Sprintf("links/g%d-%d", gi, i)})
			}
			for i := range g.names {
				p := g.path(live, i)
				require.NoError(rt, os.MkdirAll(filepath.Dir(p), 0o755))
				if i == 0 {
					require.NoError(rt, os.WriteFile(p, []byte(fmt.Sprintf("group %d\n", gi)), 0o640))
				} else {
					require.NoError(rt, os.Link(g.path(live, 0), p))
				}
			}
			groups = append(groups, g)
		}
		tamper := rapid.Bool().Draw(rt, "tamper")
		archives := filepath.Join(t.TempDir(), "archives")
		del, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
		require.NoError(rt, err)
		quarantined := func(c string) string { return quarantineOf(t, del, c) }
		stolen := filepath.Join(f.Path("data", "globex"), "stolen")
		var victim string
		if tamper {
			gi := rapid.IntRange(0, len(groups)-1).Draw(rt, "victim group")
			g := groups[gi]
			i := rapid.IntRange(0, len(g.names)-1).Draw(rt, "victim name")
			victim = fmt.Sprintf("links/g%d-", gi) // the note names one of its names
			require.NoError(rt, os.Link(g.path(quarantined, i), stolen))
		}
		res, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
		require.NoError(rt, err)
		notes := strings.Join(res.Notes, "\n")
		if !tamper {
			assert.NotContains(rt, notes, "does not match its archive", "a quarantine with only the instance's own hard links was passed over")
			for _, g := range groups {
				a, err := os.Lstat(g.path(live, 0))
				require.NoError(rt, err)
				for i := range g.names {
					b, err := os.Lstat(g.path(live, i))
					require.NoError(rt, err)
					assert.True(rt, os.SameFile(a, b), "%v: the hard link did not come back", g.names[i])
				}
			}
			return
		}
		assert.Contains(rt, notes, "link count", "the passed-over quarantine is not named")
		assert.Contains(rt, notes, victim)
		sfi, err := os.Lstat(stolen)
		require.NoError(rt, err)
		for _, g := range groups {
			for i := range g.names {
				b, err := os.Lstat(g.path(live, i))
				require.NoError(rt, err)
				assert.False(rt, os.SameFile(sfi, b), "%v: acme's restored file shares globex's inode", g.names[i])
			}
		}
	})
}

// TestOwnLinks_RelocatedTwiceAndAStranger: acme's config and data share a
// file (a hard link across components) and both move in the layout. A
// restore with relocate writes both from the archive and links them again;
// a re-run after a component went missing (logs removed) takes both new
// places as the relocation's own, the shared file counted once found at
// the other's new place. Then one more name of that file outside the
// instance: the re-run is refused, naming the file and its link count 3,
// nothing moved.
func TestOwnLinks_RelocatedTwiceAndAStranger(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, false, "acme")
	require.NoError(t, os.WriteFile(filepath.Join(f.Path("data", "acme"), "shared.bin"), []byte("shared\n"), 0o640))
	require.NoError(t, os.Link(filepath.Join(f.Path("data", "acme"), "shared.bin"), filepath.Join(f.Path("config", "acme"), "shared.bin")))
	archives := filepath.Join(t.TempDir(), "archives")
	_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)

	y, err := os.ReadFile(f.LayoutFile)
	require.NoError(t, err)
	text := strings.Replace(string(y), "/srv/"+f.App+"/", "/srv2/"+f.App+"/", 1)
	text = strings.Replace(text, "/etc/"+f.App+"/", "/etc2/"+f.App+"/", 1)
	file := filepath.Join(f.Root, "layout-moved.yml")
	require.NoError(t, os.WriteFile(file, []byte(text), 0o644))
	l, err := instance.LoadLayoutFile(file)
	require.NoError(t, err)
	g := *f.Fleet
	g.Layout, g.LayoutFile = l, file
	moved := &fleettest.Fleet{Fleet: &g}
	restore := func() (*softdelete.RestoreResult, error) {
		return softdelete.Restore(ctx, l, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Relocate: true, Options: moved.Options()})
	}
	_, err = restore()
	require.NoError(t, err)
	newData, newConfig := filepath.Join(moved.Path("data", "acme"), "shared.bin"), filepath.Join(moved.Path("config", "acme"), "shared.bin")
	a, err := os.Lstat(newData)
	require.NoError(t, err)
	b, err := os.Lstat(newConfig)
	require.NoError(t, err)
	require.True(t, os.SameFile(a, b), "the link across components was not made again")

	require.NoError(t, os.RemoveAll(moved.Path("logs", "acme")))
	res, err := restore()
	require.NoError(t, err, "a re-run took the relocation's own linked content for a stranger's")
	assert.Contains(t, strings.Join(res.Notes, "\n"), "already at its new place")

	require.NoError(t, os.RemoveAll(moved.Path("logs", "acme")))
	require.NoError(t, os.Link(newData, filepath.Join(f.Root, "stranger.bin")))
	_, err = restore()
	var re *softdelete.RestoreRefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, err.Error(), "link count 3")
	assert.Contains(t, err.Error(), "shared.bin")
	_, err = os.Lstat(moved.Path("logs", "acme"))
	assert.True(t, os.IsNotExist(err), "logs came back although the restore was refused")
}

// TestOwnLinks_BindMountedQuarantine: a directory of acme's quarantined
// data bind-mounted onto an empty directory inside globex's data (so
// globex's place shows acme's files and would change with them): the
// quarantined copy is passed over, with a note naming the bind mount, and
// acme comes back from its archive.
func TestOwnLinks_BindMountedQuarantine(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, false, "acme", "globex")
	archives := filepath.Join(t.TempDir(), "archives")
	del, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	q := quarantineOf(t, del, "data")
	at := filepath.Join(f.Path("data", "globex"), "view")
	require.NoError(t, os.Mkdir(at, 0o755))
	mount(t, at, "--bind", q)
	res, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	notes := strings.Join(res.Notes, "\n")
	assert.Contains(t, notes, "bind mount")
	assert.Contains(t, notes, at)
	_, err = os.Lstat(q)
	assert.NoError(t, err, "the bind-mounted quarantine was renamed back")
}

// TestOwnLinks_AcceptedOutsideLinkComesBack: a file of acme shared with a
// name outside the instance when deleted, accepted (accept_losses:
// [hard_links], recorded in the manifest): its quarantine is renamed back
// as it was, the link to that name kept, not passed over.
func TestOwnLinks_AcceptedOutsideLinkComesBack(t *testing.T) {
	ctx := context.Background()
	f := fleettest.New(t, false, "acme")
	inside := filepath.Join(f.Path("data", "acme"), "shared.bin")
	outside := filepath.Join(f.Root, "outside.bin")
	require.NoError(t, os.WriteFile(inside, []byte("shared\n"), 0o640))
	require.NoError(t, os.Link(inside, outside))
	archives := filepath.Join(t.TempDir(), "archives")
	req := request(f, archives, "acme")
	req.AcceptLosses = []string{archive.LossHardLinks}
	_, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	res, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	assert.NotContains(t, strings.Join(res.Notes, "\n"), "does not match its archive")
	a, err := os.Lstat(inside)
	require.NoError(t, err)
	b, err := os.Lstat(outside)
	require.NoError(t, err)
	assert.True(t, os.SameFile(a, b), "the accepted link was not given back by the rename")
}
