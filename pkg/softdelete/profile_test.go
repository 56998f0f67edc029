package softdelete_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestProfileShape soft-deletes an instance of the shape of bench/softdelete
// (FLEETSAFE_PROFILE_BIG_MIB MiB of incompressible data in 64 MiB files and
// FLEETSAFE_PROFILE_SMALL small text files), FLEETSAFE_PROFILE_RUNS times,
// and writes a CPU profile of all the runs to FLEETSAFE_PROFILE_DIR. It
// measures; it asserts nothing about time and is skipped unless asked.
func TestProfileShape(t *testing.T) {
	big, _ := strconv.Atoi(os.Getenv("FLEETSAFE_PROFILE_BIG_MIB"))
	small, _ := strconv.Atoi(os.Getenv("FLEETSAFE_PROFILE_SMALL"))
	runs, _ := strconv.Atoi(os.Getenv("FLEETSAFE_PROFILE_RUNS"))
	out := os.Getenv("FLEETSAFE_PROFILE_DIR")
	if big+small == 0 || out == "" {
		t.Skip("set FLEETSAFE_PROFILE_BIG_MIB, FLEETSAFE_PROFILE_SMALL and FLEETSAFE_PROFILE_DIR")
	}
	runs = max(runs, 1)
	dir := t.TempDir()
	parent := filepath.Join(dir, "srv")
	inst := filepath.Join(parent, "inst")
	require.NoError(t, os.MkdirAll(filepath.Join(inst, "text"), 0o755))
	buf := make([]byte, 64<<20)
	for i := 0; i*64 < big; i++ {
		n := min(64, big-i*64) << 20
		_, _ = rand.Read(buf[:n])
		require.NoError(t, os.WriteFile(filepath.Join(inst, fmt.Sprintf("blob-%02d.bin", i)), buf[:n], 0o644))
	}
	for i := range small {
		sub := filepath.Join(inst, "text", fmt.Sprintf("d%02d", i%50))
		require.NoError(t, os.MkdirAll(sub, 0o755))
		line := fmt.Sprintf("document %d: the quick brown fox jumps over the lazy dog\n", i)
		require.NoError(t, os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d.txt", i)), []byte(strings.Repeat(line, 30)), 0o644))
	}
	l, err := instance.ParseLayout([]byte("app: prof\ncomponents:\n  - name: data\n    type: dir\n    path: "+parent+"/{name}\n"), "prof.yml")
	require.NoError(t, err)
	cpu, err := os.Create(filepath.Join(out, "cpu.pprof"))
	require.NoError(t, err)
	defer cpu.Close()
	runtime.GC()
	require.NoError(t, pprof.StartCPUProfile(cpu))
	for i := range runs {
		archives := filepath.Join(dir, fmt.Sprintf("archives-%d", i))
		start := time.Now()
		last, lastCPU := start, cpuTime()
		var steps []string
		res, err := softdelete.Delete(context.Background(), l, softdelete.Request{Name: "inst", ArchiveDir: archives,
			Reason: "profile", RetentionDays: 1, Options: instance.Options{SkipSizes: true},
			AfterStep: func(step string) {
				now, cpu := time.Now(), cpuTime()
				steps = append(steps, fmt.Sprintf("%s %v (cpu %v)", step, now.Sub(last).Round(time.Millisecond), (cpu-lastCPU).Round(time.Millisecond)))
				last, lastCPU = now, cpu
			}})
		t.Logf("run %d: %v: %s", i, time.Since(start).Round(time.Millisecond), strings.Join(steps, ", "))
		require.NoError(t, err)
		require.True(t, res.Archive.Verified)
		trash, _ := filepath.Glob(filepath.Join(parent, ".fleetsafe-trash", "*", "inst"))
		require.Len(t, trash, 1)
		require.NoError(t, os.Rename(trash[0], inst))
		require.NoError(t, os.RemoveAll(filepath.Join(parent, ".fleetsafe-trash")))
		require.NoError(t, os.RemoveAll(archives))
	}
	pprof.StopCPUProfile()
}

// cpuTime is the process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
