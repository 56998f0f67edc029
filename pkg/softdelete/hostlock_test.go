package softdelete_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// holdDuringLock starts a soft delete of name that stops right after it
// took its locks, and returns a function that lets it finish and waits for
// its result.
func holdDuringLock(t *testing.T, l *instance.Layout, req softdelete.Request) func() (*softdelete.Result, error) {
	t.Helper()
	locked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	req.AfterStep = func(step string) {
		if step == "lock" {
			once.Do(func() { close(locked) })
			<-release
		}
	}
	var res *softdelete.Result
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err = softdelete.Delete(context.Background(), l, req)
	}()
	select {
	case <-locked:
	case <-done:
		t.Fatalf("the first deletion ended before taking its lock: %v", err)
	}
	return func() (*softdelete.Result, error) {
		close(release)
		<-done
		return res, err
	}
}

// Two soft deletes of one instance at once, each with its own archive_dir
// (or the second reaching the instance's directory through a symlinked
// parent): the second is refused before it writes anything, naming the
// host lock; the first completes. FINDINGS-2.md break 4.
func TestHostLock_TwoDeletionsWithDifferentArchiveDirs(t *testing.T) {
	for _, how := range []string{"same-layout", "through-symlinked-parent"} {
		t.Run(how, func(t *testing.T) {
			f := fleettest.New(t, false, "acme", "bob")
			root := t.TempDir()
			first, second := filepath.Join(root, "a"), filepath.Join(root, "b")
			l2 := f.Layout
			if how == "through-symlinked-parent" {
				link := filepath.Join(root, "link")
				require.NoError(t, os.Symlink(f.Root, link))
				body, err := os.ReadFile(f.LayoutFile)
				require.NoError(t, err)
				l2, err = instance.ParseLayout([]byte(strings.ReplaceAll(string(body), f.Root+"/", link+"/")), "linked.yml")
				require.NoError(t, err)
			}
			before := f.Snapshot(t, "acme")
			finish := holdDuringLock(t, f.Layout, request(f, first, "acme"))
			_, err := softdelete.Delete(context.Background(), l2, request(f, second, "acme"))
			var re *softdelete.RefusedError
			require.ErrorAs(t, err, &re, "the second deletion is refused on the host lock")
			assert.Contains(t, err.Error(), "another fleetsafe run holds the lock of this instance (host lock")
			assert.NoDirExists(t, second, "the refused run created nothing")
			assert.Equal(t, before, f.Snapshot(t, "acme"), "nothing moved while the first run waits")
			// Restore and a third deletion are refused too.
			_, err = softdelete.Restore(context.Background(), l2, softdelete.RestoreRequest{Name: "acme", ArchiveDir: first, Source: softdelete.SourceAuto, Options: f.Options()})
			var rre *softdelete.RestoreRefusedError
			require.ErrorAs(t, err, &rre, "a restore is refused while a deletion runs")
			assert.Contains(t, err.Error(), "host lock")
			// Another instance is not locked.
			_, err = softdelete.Delete(context.Background(), l2, softdelete.Request{Name: "bob", ArchiveDir: second, Reason: "x", Options: f.Options(), CheckMode: true})
			require.NoError(t, err)

			res, err := finish()
			require.NoError(t, err)
			assert.True(t, res.Changed)
			// Released: a run now finds acme deleted.
			res, err = softdelete.Delete(context.Background(), l2, request(f, second, "acme"))
			require.NoError(t, err)
			assert.False(t, res.Changed)
		})
	}
}
