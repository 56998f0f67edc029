package softdelete_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestHostile_DirectorySwappedAfterCollection: entries are reached
// through their open directory (dirHandle). A directory of the instance
// swapped for a link to a decoy holding the same names, at every step
// between the walk and the quarantine, refuses the deletion: nothing is
// moved, no archive is kept, the decoy is never archived as the
// instance's own.
func TestHostile_DirectorySwappedAfterCollection(t *testing.T) {
	for _, step := range []string{"dump", "hash", "archive", "verify"} {
		for _, where := range []string{"outside", "inside"} {
			t.Run(step+"/"+where, func(t *testing.T) {
				f := fleettest.New(t, false, "acme")
				archives := filepath.Join(t.TempDir(), "archives")
				data := f.Path("data", "acme")
				a1 := filepath.Join(data, "depot", "a1")
				names, err := os.ReadDir(a1)
				require.NoError(t, err)
				decoy, target := filepath.Join(t.TempDir(), "decoy"), ""
				if where == "inside" {
					decoy = filepath.Join(data, "preview", "decoy")
					target = "../preview/decoy"
				} else {
					target = decoy
				}
				aside := filepath.Join(t.TempDir(), "aside")
				req := request(f, archives, "acme")
				req.AfterStep = func(s string) {
					if s != step {
						return
					}
					require.NoError(t, os.MkdirAll(decoy, 0o755))
					for _, n := range names {
						// Same names, same sizes, other bytes.
						fi, err := n.Info()
						require.NoError(t, err)
						require.NoError(t, os.WriteFile(filepath.Join(decoy, n.Name()), bytes.Repeat([]byte("D"), int(fi.Size())), 0o644))
					}
					require.NoError(t, os.Rename(a1, aside))
					require.NoError(t, os.Symlink(target, a1))
				}
				res, err := softdelete.Delete(context.Background(), f.Layout, req)
				require.Error(t, err)
				var le *softdelete.LateChangeError
				var ce *archive.ChangedFileError
				switch {
				case step == "archive" || step == "verify":
					require.True(t, errors.As(err, &le), "%T %v", err, err)
				case where == "outside":
					// The open directory is never left for a link out
					// of the component.
					require.ErrorContains(t, err, "path escapes from parent")
				default:
					// Read through a link inside the component: the
					// decoy's bytes differ from the hashed ones, or the
					// swap is found by the late-change check.
					require.True(t, errors.As(err, &le) || errors.As(err, &ce), "%T %v", err, err)
				}
				assert.Nil(t, res, "nothing moved")
				assert.Empty(t, archivesOf(t, archives), "no archive kept")
				for _, c := range []string{"config", "data", "logs"} {
					_, err := os.Lstat(f.Path(c, "acme"))
					assert.NoError(t, err, "%s not moved", c)
				}
				got, err := os.Readlink(a1)
				require.NoError(t, err)
				assert.Equal(t, target, got, "the link is left where it is")
			})
		}
	}
}
