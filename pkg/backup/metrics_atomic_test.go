package backup_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/backup"
)

// bigQuarantine makes a metrics file of some size, so that writes take
// long enough to overlap.
func bigQuarantine(n int, at time.Time) *backup.Quarantine {
	q := &backup.Quarantine{ReadOK: true}
	for i := 0; i < n; i++ {
		q.Deletions = append(q.Deletions, backup.QuarantinedDeletion{Name: fmt.Sprintf("instance-%04d", i), ID: fmt.Sprintf("20260101T000000Z-%04d", i),
			State: "quarantined", DeletedAt: at, PurgeAfter: at.Add(time.Duration(i) * time.Hour)})
	}
	return q
}

// TestMetrics_TwoWritersAtOnce: two runs writing the same metrics file at
// the same time (a schedule and a manual run) never leave, even for an
// instant, a file that is a mix of both or cut short: a reader scraping
// all along sees one whole file or the other, and no temporary file is
// left behind.
func TestMetrics_TwoWritersAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleetsafe.prom")
	at := time.Unix(1_790_000_000, 0)
	qa, qb := bigQuarantine(200, at), bigQuarantine(120, at.Add(time.Hour))
	want := map[string]bool{backup.FailedRunMetrics("alpha", at, qa): true, backup.FailedRunMetrics("beta", at, qb): true}
	require.NoError(t, backup.WriteFailedRunMetrics(path, "alpha", at, qa))

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, w := range []struct {
		app string
		q   *backup.Quarantine
	}{{"alpha", qa}, {"beta", qb}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 15; i++ {
				if err := backup.WriteFailedRunMetrics(path, w.app, at, w.q); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	reads := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		data, err := os.ReadFile(path)
		require.NoError(t, err, "the file is always there")
		require.True(t, want[string(data)], "a scrape saw a mixed or cut file of %d bytes", len(data))
		reads++
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Greater(t, reads, 10)
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*"))
	assert.Empty(t, leftovers, "no temporary file left")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), "node_exporter, another user, can read it")
}

// TestMetrics_FullDiskKeepsThePreviousFile: on a full disk (a small
// tmpfs) the write fails naming the file, the previous file stays whole
// and no temporary file is left.
func TestMetrics_FullDiskKeepsThePreviousFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"))
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	path := filepath.Join(dir, "fleetsafe.prom")
	at := time.Unix(1_790_000_000, 0)
	small := bigQuarantine(3, at)
	require.NoError(t, backup.WriteFailedRunMetrics(path, "alpha", at, small))
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	err = backup.WriteFailedRunMetrics(path, "alpha", at, bigQuarantine(2000, at))
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
	assert.Contains(t, err.Error(), path)
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "the previous file is untouched")
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*"))
	assert.Empty(t, leftovers, "no temporary file left")
}

// TestMetrics_HostileLabelValuesParse: label values from tombstones and
// directory names (quotes, backslashes, newlines, braces, a forged
// sample line, control characters, bytes that are not UTF-8, long
// values) never break the file: a scrape reads every series back with its
// value, invalid bytes and control characters but newline shown as
// U+FFFD.
func TestMetrics_HostileLabelValuesParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{`"`, `\`, "\n", "\r", "\t", "{", "}", "=", ",", `\n`, `\"`, "} 1\nfleetsafe_backup_status{app=\"x\"} 0\n# HELP x\n", "\x00", "\x7f", "\xff", "\xc3", "é", "日本", "\u2028", " ", "a", "-"}
	hostile := func() string {
		var b strings.Builder
		for n := rng.IntN(12); n >= 0; n-- {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	at := time.Unix(1_790_000_000, 0)
	q := &backup.Quarantine{ReadOK: true}
	want := map[string]float64{}
	for i := 0; i < 300; i++ {
		d := backup.QuarantinedDeletion{Name: hostile(), ID: fmt.Sprintf("%d%s", i, hostile()), State: hostile(), DeletedAt: at, PurgeAfter: at.Add(time.Duration(i) * time.Second)}
		if i == 0 {
			d.Name = strings.Repeat("x\"\\", 4000)
		}
		q.Deletions = append(q.Deletions, d)
		labels := []string{"app=" + clean("app\"\\\n\xff"), "name=" + clean(d.Name),
			"state=" + clean(d.State), "tombstone=" + clean(d.ID)}
		want["fleetsafe_quarantine_purge_after_timestamp_seconds{"+strings.Join(labels, ",")+"}"] = float64(d.PurgeAfter.Unix())
	}
	path := filepath.Join(t.TempDir(), "fleetsafe.prom")
	require.NoError(t, backup.WriteFailedRunMetrics(path, "app\"\\\n\xff", at, q))
	samples := parsePrometheus(t, path)
	for k, v := range want {
		assert.Equal(t, v, samples[k], "series %q", k)
	}
	assert.Equal(t, 300.0, samples["fleetsafe_quarantine_deletions{app="+clean("app\"\\\n\xff")+"}"])
}

func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\n' && unicode.IsControl(r) {
			return unicode.ReplacementChar
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// TestMetrics_KilledWriterLeftoversGo: the temporary file of a run killed
// while writing (older than an hour) is removed by the next write; one
// being written now by another run is left alone.
func TestMetrics_KilledWriterLeftoversGo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fleetsafe.prom")
	old := filepath.Join(dir, ".fleetsafe.prom.111.tmp")
	fresh := filepath.Join(dir, ".fleetsafe.prom.222.tmp")
	other := filepath.Join(dir, ".other.prom.333.tmp")
	for _, p := range []string{old, fresh, other} {
		require.NoError(t, os.WriteFile(p, []byte("fleetsafe_backup_status{"), 0o644))
	}
	long := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(old, long, long))
	require.NoError(t, os.Chtimes(other, long, long))
	require.NoError(t, backup.WriteFailedRunMetrics(path, "alpha", time.Now(), nil))
	assert.NoFileExists(t, old)
	assert.FileExists(t, fresh, "another run may be writing it")
	assert.FileExists(t, other, "another file's temporary is not ours")
}
