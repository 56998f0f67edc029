package softdelete_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestHostile_FileShrinksOrTurnsFIFOWhileArchived: a file truncated, or
// replaced by a named pipe, after the manifest hashed it and before the
// archive reads it is refused while the archive is written, naming the
// file; the writer never waits on the pipe; nothing is moved and no
// archive is kept.
func TestHostile_FileShrinksOrTurnsFIFOWhileArchived(t *testing.T) {
	for _, how := range []string{"truncated", "fifo"} {
		t.Run(how, func(t *testing.T) {
			f := fleettest.New(t, false, "acme")
			archives := filepath.Join(t.TempDir(), "archives")
			changing := filepath.Join(f.Path("data", "acme"), "depot", "a1", "file-002.bin")
			req := request(f, archives, "acme")
			req.AfterStep = func(step string) {
				if step != "hash" {
					return
				}
				if how == "truncated" {
					require.NoError(t, os.Truncate(changing, 3))
					return
				}
				require.NoError(t, os.Remove(changing))
				require.NoError(t, syscall.Mkfifo(changing, 0o644))
			}
			done := make(chan error, 1)
			go func() {
				_, err := softdelete.Delete(context.Background(), f.Layout, req)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the soft delete waits on the named pipe")
			}
			var ce *archive.ChangedFileError
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.Equal(t, changing, ce.Path, "says which file changed")
			assert.Empty(t, archivesOf(t, archives), "no archive is kept")
			for _, c := range []string{"config", "data", "logs"} {
				_, err := os.Stat(f.Path(c, "acme"))
				assert.NoError(t, err, "%s not removed", c)
			}
		})
	}
}
