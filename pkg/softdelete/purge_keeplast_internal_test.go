package softdelete

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// TestPurge_KeepLastCountsDeletionsOnlyProperty interleaves, at random,
// archives of deletions (restored or purged), spare copies of attempts
// that moved nothing (abandoned or still archiving, with or without a
// recorded purge_after) and archives without a tombstone, then purges
// with a random keep_last at a random instant. The newest keep_last
// deletions' archives are always kept whatever spare copies are newer;
// a spare copy is never kept by keep_last, only by its own retention;
// every archive is reported exactly once, purged or kept, with a reason
// that says which; and what is reported purged is gone (outside check
// mode) while what is kept is still there.
func TestPurge_KeepLastCountsDeletionsOnlyProperty(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rapid.Check(t, func(t *rapid.T) {
		archives, err := os.MkdirTemp("", "fspurgekeep")
		require.NoError(t, err)
		defer os.RemoveAll(archives)
		dir := filepath.Join(archives, "acme")
		require.NoError(t, os.Mkdir(dir, 0o700))
		type arch struct {
			path       string
			kind       string // deletion, spare, orphan
			purgeAfter time.Time
		}
		var all []arch
		for i := range rapid.IntRange(0, 8).Draw(t, "n") {
			deleted := base.Add(time.Duration(i) * 24 * time.Hour)
			id := fmt.Sprintf("%s-%08x", deleted.Format("20060102T150405.000000Z"), i)
			a := arch{path: filepath.Join(dir, id+".tar.zst"), kind: rapid.SampledFrom([]string{"deletion", "deletion", "spare", "orphan"}).Draw(t, "kind")}
			// The archive's own manifest records the retention its
			// tombstone does (or, written by an earlier release, none).
			var manifestAfter *time.Time
			if rapid.Bool().Draw(t, "manifest records retention") {
				pa := deleted.Add(time.Duration(rapid.IntRange(0, 20).Draw(t, "days")) * 24 * time.Hour)
				manifestAfter = &pa
			}
			if manifestAfter != nil {
				a.purgeAfter = *manifestAfter
			}
			if a.kind != "orphan" {
				ts := &Tombstone{ID: id, Instance: "acme", ArchivePath: a.path, Path: filepath.Join(dir, id+".tombstone.json")}
				if a.kind == "deletion" {
					ts.State = rapid.SampledFrom([]string{StateRestored, StatePurged}).Draw(t, "state")
				} else {
					ts.State = rapid.SampledFrom([]string{StateAbandoned, StateArchiving}).Draw(t, "state")
				}
				// A spare copy recorded from an archive found without a
				// tombstone has no deleted_at nor purge_after.
				if a.kind == "deletion" || rapid.IntRange(0, 3).Draw(t, "recorded") > 0 {
					ts.DeletedAt = deleted
					if manifestAfter == nil {
						a.purgeAfter = deleted.Add(time.Duration(rapid.IntRange(0, 20).Draw(t, "days")) * 24 * time.Hour)
						ts.RetentionDays = int(a.purgeAfter.Sub(deleted) / (24 * time.Hour))
					}
					ts.PurgeAfter = a.purgeAfter
				} else if manifestAfter == nil {
					// An earlier release's archive: its deletion date,
					// from its manifest, plus the tombstone's
					// retention_days (0).
					a.purgeAfter = deleted
				}
				writeTombstoneFast(t, ts)
			}
			BareArchive(t, a.path, id, "acme", "", deleted, manifestAfter)
			all = append(all, a)
		}
		keep := rapid.IntRange(0, 3).Draw(t, "keep")
		now := base.Add(time.Duration(rapid.IntRange(0, 30*24).Draw(t, "hours")) * time.Hour)
		check := rapid.Bool().Draw(t, "check")
		out, err := PurgeReport(context.Background(), PurgeRequest{ArchiveDir: archives, Name: "acme", KeepLast: keep, Now: now, CheckMode: check})
		require.NoError(t, err)
		listed := map[string]string{}
		list := func(path, what string) {
			if prev, ok := listed[path]; ok {
				t.Fatalf("%s reported twice: %s and %s", path, prev, what)
			}
			listed[path] = what
		}
		for _, p := range out.Purged {
			list(p.Path, "purged: "+p.Reason)
		}
		for _, k := range out.Kept {
			list(k.Path, "kept: "+k.Reason)
		}
		deletions := 0
		for _, a := range all {
			if a.kind == "deletion" {
				deletions++
			}
		}
		seen := 0
		for _, a := range all {
			got := listed[a.path]
			var want string // kept or purged, and a word its reason must hold
			var word string
			switch a.kind {
			case "deletion":
				seen++
				switch {
				case seen > deletions-keep:
					want, word = "kept", "keep_last"
				case now.Before(a.purgeAfter):
					want, word = "kept", "retention"
				default:
					want, word = "purged", "deletion"
				}
			default:
				if now.Before(a.purgeAfter) {
					want, word = "kept", "retention"
				} else {
					want, word = "purged", "not counted by keep_last"
				}
			}
			if !strings.HasPrefix(got, want+": ") || !strings.Contains(got, word) {
				t.Fatalf("%s (%s, purge_after %s, now %s, keep_last %d, deletion %d of %d): want %s with a reason naming %q, got %q",
					filepath.Base(a.path), a.kind, a.purgeAfter, now, keep, seen, deletions, want, word, got)
			}
			_, statErr := os.Stat(a.path)
			_, sumErr := os.Stat(a.path + ".sha256")
			if gone := statErr != nil && sumErr != nil; gone != (want == "purged" && !check) {
				t.Fatalf("%s (%s) reported %q, check mode %v, but on disk gone=%v", filepath.Base(a.path), a.kind, got, check, gone)
			}
		}
		if len(listed) != len(all) {
			t.Fatalf("reported %d archives, there are %d: %v", len(listed), len(all), listed)
		}
	})
}
