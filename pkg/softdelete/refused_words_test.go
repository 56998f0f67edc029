package softdelete_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestRefusal_WordsFitTheAction: every refusal names the action that was
// refused. The per-instance lock is shared by delete, purge and restore;
// a purge or a restore refused on it said "refusing to delete", which
// reads as if a deletion had been attempted.
func TestRefusal_WordsFitTheAction(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	dir := filepath.Join(archives, "acme")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	lf, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	require.NoError(t, err)
	defer lf.Close()
	require.NoError(t, syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))

	cases := map[string]func() error{
		"delete": func() error {
			_, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
			return err
		},
		"purge": func() error {
			_, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: archives, Name: "acme", KeepLast: 1, PG: f.PG})
			return err
		},
		"restore": func() error {
			_, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Force: true, Options: f.Options()})
			return err
		},
	}
	for action, call := range cases {
		err := call()
		require.Error(t, err, action)
		assert.True(t, strings.HasPrefix(err.Error(), "refusing to "+action+" acme: "), "%s refused on the lock: %v", action, err)
	}
	_, err = softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: archives, KeepLast: 0, PG: f.PG})
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "refusing to purge "), "keep_last refusal: %v", err)
}
