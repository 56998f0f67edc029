package softdelete

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// Property: purge removes a quarantine only when its tombstone is, by the
// host's layout of its app, the instance's own: with tombstones forged at
// random (instance, app, component names, types, from and to paths taken
// from another instance or made up), bob's quarantine is never removed by
// a purge of acme, and acme's is removed only when the tombstone says
// exactly what the layout says. FINDINGS-1.md break 6.
func TestPurge_ForgedTombstonesNeverReachAnotherInstanceProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		root, err := os.MkdirTemp("", "fspurgescope")
		require.NoError(t, err)
		defer os.RemoveAll(root)
		l, err := instance.ParseLayout([]byte(fmt.Sprintf("app: pa\nname_pattern: '^[a-z]+$'\ncomponents:\n"+
			"  - name: data\n    type: dir\n    path: %[1]s/srv/{name}/data\n"+
			"  - name: conf\n    type: file\n    path: %[1]s/etc/{name}.ini\n", root)), "pa.yml")
		require.NoError(t, err)
		archives := filepath.Join(root, "archives")
		id := "20260101T000000.000000Z-0000abcd"
		// Real quarantines of acme and bob. Bob's deletion may have the
		// same id (a forged tombstone copied from it, then made to look
		// like acme's): the trash entry of the file components' shared
		// parent then holds both.
		sharedID := rapid.Bool().Draw(t, "shared-id")
		ids := map[string]string{"acme": id, "bob": "20260101T000000.000000Z-0000b0b0"}
		if sharedID {
			ids["bob"] = id
		}
		quarantined := map[string]string{}
		for _, n := range []string{"acme", "bob"} {
			for _, c := range l.Components {
				from := c.Template.Expand(n)
				to := quarantineTarget(c.Type, from, ids[n])
				require.NoError(t, os.MkdirAll(filepath.Dir(to), 0o700))
				if c.Type == instance.TypeDir {
					require.NoError(t, os.MkdirAll(to, 0o755))
					require.NoError(t, os.WriteFile(filepath.Join(to, "f"), []byte(n), 0o644))
				} else {
					require.NoError(t, os.WriteFile(to, []byte(n), 0o644))
				}
				quarantined[n+"/"+c.Name] = to
			}
		}
		honest := true
		ts := &Tombstone{ID: id, Instance: "acme", App: "pa", State: StateQuarantined,
			DeletedAt: time.Now().Add(-48 * time.Hour), PurgeAfter: time.Now().Add(-time.Hour)}
		if rapid.IntRange(0, 5).Draw(t, "other-app") == 0 {
			ts.App, honest = "pb", false
		}
		for _, c := range l.Components {
			m := QuarantineMove{Component: c.Name, Type: c.Type, From: c.Template.Expand("acme")}
			switch rapid.IntRange(0, 6).Draw(t, "forge-"+c.Name) {
			case 0: // bob's place and bob's quarantine
				m.From = c.Template.Expand("bob")
				honest = false
			case 1: // acme's place, bob's quarantine
				m.To = quarantineTarget(c.Type, c.Template.Expand("bob"), ids["bob"])
				honest = false
			case 2: // another component's name
				m.Component = map[string]string{"data": "conf", "conf": "data"}[c.Name]
				honest = false
			case 3: // another type
				m.Type = map[string]string{instance.TypeDir: instance.TypeFile, instance.TypeFile: instance.TypeDir}[c.Type]
				honest = false
			}
			if m.To == "" {
				m.To = quarantineTarget(m.Type, m.From, id)
			}
			ts.Components = append(ts.Components, m)
		}
		dir := filepath.Join(archives, "acme")
		require.NoError(t, os.MkdirAll(dir, 0o700))
		ts.Path = filepath.Join(dir, id+".tombstone.json")
		writeTombstoneFast(t, ts)

		check := rapid.Bool().Draw(t, "check")
		out, err := PurgeReport(context.Background(), PurgeRequest{ArchiveDir: archives, Name: "acme", KeepLast: 0,
			Layouts: []*instance.Layout{l}, CheckMode: check})
		for _, c := range l.Components {
			_, berr := os.Lstat(quarantined["bob/"+c.Name])
			if berr != nil {
				t.Fatalf("bob's quarantine %s was removed by a purge of acme (tombstone %+v): %v", quarantined["bob/"+c.Name], ts.Components, berr)
			}
			_, aerr := os.Lstat(quarantined["acme/"+c.Name])
			if (aerr == nil) != (check || !honest || sharedID) {
				t.Fatalf("acme's quarantine %s: present %v, honest tombstone %v, shared id %v, check mode %v, err %v", quarantined["acme/"+c.Name], aerr == nil, honest, sharedID, check, err)
			}
		}
		if !honest || sharedID {
			require.Error(t, err, "a forged tombstone fails the purge")
			require.True(t, slices.ContainsFunc(out.Refused, func(r Refused) bool { return r.Instance == "acme" && r.Left != "" }), "%+v", out.Refused)
			require.Empty(t, out.Purged)
		}
	})
}

// Property: archives of two apps' instances of one name, filed in the same
// archive_dir/<name>/, are counted per (app, instance): whatever keep_last,
// the clock, the tombstones and the app a purge is restricted to, the
// newest keep_last archives of each app's instance stay, no archive within
// its retention goes, and a purge restricted to one app neither removes
// nor lists another app's. FINDINGS-1.md break 12.
func TestPurge_KeepLastCountsPerAppProperty(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rapid.Check(t, func(t *rapid.T) {
		archives, err := os.MkdirTemp("", "fspurgeapps")
		require.NoError(t, err)
		defer os.RemoveAll(archives)
		dir := filepath.Join(archives, "acme")
		require.NoError(t, os.Mkdir(dir, 0o700))
		type arch struct {
			path, app  string
			purgeAfter time.Time
		}
		var all []arch
		for i := range rapid.IntRange(0, 7).Draw(t, "n") {
			deleted := base.Add(time.Duration(i) * 24 * time.Hour)
			id := fmt.Sprintf("%s-%08x", deleted.Format("20060102T150405.000000Z"), i)
			a := arch{path: filepath.Join(dir, id+".tar.zst"), app: rapid.SampledFrom([]string{"alpha", "beta"}).Draw(t, "app")}
			a.purgeAfter = deleted.Add(time.Duration(rapid.IntRange(0, 20).Draw(t, "days")) * 24 * time.Hour)
			BareArchive(t, a.path, id, "acme", a.app, deleted, &a.purgeAfter)
			ts := &Tombstone{ID: id, Instance: "acme", App: a.app, ArchivePath: a.path, DeletedAt: deleted, PurgeAfter: a.purgeAfter,
				State: rapid.SampledFrom([]string{StateRestored, StatePurged}).Draw(t, "state"), Path: filepath.Join(dir, id+".tombstone.json")}
			writeTombstoneFast(t, ts)
			all = append(all, a)
		}
		keep := rapid.IntRange(0, 3).Draw(t, "keep")
		now := base.Add(time.Duration(rapid.IntRange(0, 30*24).Draw(t, "hours")) * time.Hour)
		scope := rapid.SampledFrom([]string{"", "alpha", "beta"}).Draw(t, "scope")
		out, err := PurgeReport(context.Background(), PurgeRequest{ArchiveDir: archives, Name: "acme", KeepLast: keep, Now: now, App: scope,
			CheckMode: rapid.Bool().Draw(t, "check")})
		require.NoError(t, err)
		listed := map[string]string{}
		for _, p := range out.Purged {
			listed[p.Path] = "purged:" + p.App
		}
		for _, k := range out.Kept {
			listed[k.Path] = "kept:" + k.App
		}
		for _, app := range []string{"alpha", "beta"} {
			var mine []arch
			for _, a := range all {
				if a.app == app {
					mine = append(mine, a)
				}
			}
			for i, a := range mine {
				got := listed[a.path]
				switch {
				case scope != "" && scope != app:
					if got != "" {
						t.Fatalf("a purge of app %s listed %s of app %s: %s", scope, a.path, app, got)
					}
				case i >= len(mine)-keep || now.Before(a.purgeAfter):
					if got != "kept:"+app {
						t.Fatalf("%s (app %s, %d of %d, purge_after %s, now %s, keep %d) must be kept: %s", a.path, app, i, len(mine), a.purgeAfter, now, keep, got)
					}
				default:
					if got != "purged:"+app {
						t.Fatalf("%s (app %s, %d of %d) is due: %s", a.path, app, i, len(mine), got)
					}
				}
			}
		}
	})
}

// writeTombstoneFast writes a tombstone without the fsyncs of the real
// writer: these tests write thousands.
func writeTombstoneFast(t require.TestingT, ts *Tombstone) {
	data, err := json.Marshal(ts)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(ts.Path, data, 0o600))
}
