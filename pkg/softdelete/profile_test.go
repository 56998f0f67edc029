package softdelete_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// TestProfileManyFiles soft-deletes an instance of FLEETSAFE_PROFILE_FILES
// small files and writes CPU and heap profiles to FLEETSAFE_PROFILE_DIR.
// It measures; it asserts nothing about time and is skipped unless asked.
func TestProfileManyFiles(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FLEETSAFE_PROFILE_FILES"))
	out := os.Getenv("FLEETSAFE_PROFILE_DIR")
	if n == 0 || out == "" {
		t.Skip("set FLEETSAFE_PROFILE_FILES and FLEETSAFE_PROFILE_DIR")
	}
	dir := t.TempDir()
	parent := filepath.Join(dir, "srv")
	body := make([]byte, 1700)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	for i := range n {
		d := filepath.Join(parent, "inst", fmt.Sprintf("d%03d", i%500))
		require.NoError(t, os.MkdirAll(d, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%06d.txt", i)), body, 0o644))
	}
	l, err := instance.ParseLayout([]byte("app: prof\ncomponents:\n  - name: data\n    type: dir\n    path: "+parent+"/{name}\n"), "prof.yml")
	require.NoError(t, err)
	cpu, err := os.Create(filepath.Join(out, "cpu.pprof"))
	require.NoError(t, err)
	defer cpu.Close()
	runtime.GC()
	require.NoError(t, pprof.StartCPUProfile(cpu))
	res, err := softdelete.Delete(context.Background(), l, softdelete.Request{Name: "inst", ArchiveDir: filepath.Join(dir, "archives"),
		Reason: "profile", RetentionDays: 1, Options: instance.Options{SkipSizes: true}})
	pprof.StopCPUProfile()
	require.NoError(t, err)
	require.True(t, res.Archive.Verified)
	heap, err := os.Create(filepath.Join(out, "heap.pprof"))
	require.NoError(t, err)
	defer heap.Close()
	require.NoError(t, pprof.Lookup("allocs").WriteTo(heap, 0))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("files %d: heap sys %d MiB, total alloc %d MiB, GCs %d", n, ms.HeapSys>>20, ms.TotalAlloc>>20, ms.NumGC)
}
