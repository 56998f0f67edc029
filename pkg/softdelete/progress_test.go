package softdelete_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// progressLog records the reports of a Progress callback.
type progressLog struct {
	mu  sync.Mutex
	all []archive.Progress
}

func (l *progressLog) report(p archive.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, p)
}

// runs splits the reports into runs of one phase (each run starts with a
// report of nothing done) and checks each: one phase, done values that
// never go down, totals that never go down, done never above total, and
// a last report with done equal to total. It returns the phases in order.
func (l *progressLog) runs(t *testing.T) ([]string, []archive.Progress) {
	t.Helper()
	var phases []string
	var finals []archive.Progress
	var prev *archive.Progress
	end := func() {
		if prev != nil {
			assert.Equal(t, prev.BytesTotal, prev.BytesDone, "phase %s ends with its bytes total: %+v", prev.Phase, *prev)
			assert.Equal(t, prev.FilesTotal, prev.FilesDone, "phase %s ends with its files total: %+v", prev.Phase, *prev)
			finals = append(finals, *prev)
		}
	}
	for i := range l.all {
		p := l.all[i]
		assert.LessOrEqual(t, p.BytesDone, p.BytesTotal, "%+v", p)
		assert.LessOrEqual(t, p.FilesDone, p.FilesTotal, "%+v", p)
		if p.BytesDone == 0 && p.FilesDone == 0 {
			end()
			phases = append(phases, p.Phase)
		} else {
			require.NotNil(t, prev, "a run starts with nothing done: %+v", p)
			assert.Equal(t, prev.Phase, p.Phase)
			assert.GreaterOrEqual(t, p.BytesDone, prev.BytesDone, "bytes done never go down")
			assert.GreaterOrEqual(t, p.FilesDone, prev.FilesDone, "files done never go down")
			assert.GreaterOrEqual(t, p.BytesTotal, prev.BytesTotal, "bytes total never goes down")
			assert.GreaterOrEqual(t, p.FilesTotal, prev.FilesTotal, "files total never goes down")
		}
		prev = &l.all[i]
	}
	end()
	return phases, finals
}

// TestProgress_DeleteRestoreVerify: soft delete reports archiving then
// verifying, restore from the archive verifying then extracting, and
// VerifyArchiveWith verifying; each phase's values only grow and its last
// report has everything done: every file (manifest, RESTORE.md, the
// instance's files, the dump) and every byte of the archive.
func TestProgress_DeleteRestoreVerify(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")

	var del progressLog
	req := request(f, archives, "acme")
	req.Progress = del.report
	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	phases, finals := del.runs(t)
	require.Equal(t, []string{archive.PhaseArchive, archive.PhaseVerify}, phases)
	fi, err := os.Stat(res.Archive.Path)
	require.NoError(t, err)
	assert.Equal(t, fi.Size(), finals[1].BytesTotal, "verify reads the whole archive")

	var ver progressLog
	m, err := archive.VerifyArchiveWith(ctx, res.Archive.Path, archive.VerifyOptions{Progress: ver.report})
	require.NoError(t, err)
	files := 2 + len(m.Databases) // manifest.json, RESTORE.md, the dumps
	var bytes int64
	for _, e := range m.Files {
		if e.Type == "file" {
			files++
			bytes += e.Size
		}
	}
	require.Len(t, m.Databases, 1)
	assert.Equal(t, files, finals[0].FilesTotal, "every regular file, manifest.json, RESTORE.md and the dump")
	assert.Greater(t, finals[0].BytesTotal, bytes, "the files' bytes and more (the manifest, RESTORE.md, the dump)")
	phases, finals = ver.runs(t)
	require.Equal(t, []string{archive.PhaseVerify}, phases)
	assert.Equal(t, fi.Size(), finals[0].BytesDone)

	var rst progressLog
	_, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives,
		Source: softdelete.SourceArchive, Options: f.Options(), Progress: rst.report})
	require.NoError(t, err)
	phases, finals = rst.runs(t)
	require.Equal(t, []string{archive.PhaseVerify, archive.PhaseRestore}, phases)
	assert.Equal(t, fi.Size(), finals[1].BytesDone, "the extraction reads the whole archive")

	// Without a callback nothing is reported and nothing breaks.
	_, err = archive.VerifyArchiveWith(ctx, res.Archive.Path, archive.VerifyOptions{})
	require.NoError(t, err)
}
