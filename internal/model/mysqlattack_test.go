package model

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// PlantInQuarantine creates a table in the MariaDB quarantine database of
// a deletion, as someone else with access to the server would: the
// quarantine no longer matches its archive. The model expects every later
// restore to take that component from the archive instead (source
// quarantine refuses), the planted table never to reach the instance,
// and purge to drop the quarantine with it.
func (m *machine) PlantInQuarantine(t *rapid.T) {
	var held []*deletion
	for _, n := range m.names {
		for _, d := range m.model[n].deletions {
			if d.held[compMy] && !d.tampered[compMy] {
				held = append(held, d)
			}
		}
	}
	if len(held) == 0 {
		t.Skip("no MariaDB quarantine")
	}
	d := rapid.SampledFrom(held).Draw(t, "quarantine")
	admin, err := m.f.my.Open(m.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(m.ctx, "CREATE TABLE "+mariadb.QuoteIdent(d.moves[compMy].To)+".planted (id INT)"); err != nil {
		t.Fatal(err)
	}
	if d.tampered == nil {
		d.tampered = map[string]bool{}
	}
	d.tampered[compMy] = true
}

// SquatDatabase creates, at the MariaDB database name of an instance whose
// database is absent (deleted), an empty database, as a package script
// or an operator would: discovery sees the component present, restore
// leaves it alone without force and moves it aside with force, and
// nothing of a restore lands in it.
func (m *machine) SquatDatabase(t *rapid.T) {
	var absent []string
	for _, n := range m.names {
		if _, ok := m.model[n].digest[compMy]; !ok {
			absent = append(absent, n)
		}
	}
	if len(absent) == 0 {
		t.Skip("every MariaDB database is present")
	}
	name := rapid.SampledFrom(absent).Draw(t, "name")
	admin, err := m.f.my.Open(m.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(m.ctx, "CREATE DATABASE "+mariadb.QuoteIdent(m.f.myDatabase(name))); err != nil {
		t.Fatal(err)
	}
	m.model[name].digest[compMy] = m.observe(t, name)[compMy]
}

// TestModel_PlantedMySQLQuarantine attacks the trust in a MariaDB
// quarantine: after a soft delete, someone creates a table in the
// quarantine database; a restore (any source, the whole instance or a
// subset, as the library or the real instance_restore binary killed at a
// random instant and run again) must take that component from the
// archive (source quarantine refuses, changing nothing), never bring the
// planted table into the instance, and leave every instance as the model
// says; then a purge drops the quarantine, planted table and all.
func TestModel_PlantedMySQLQuarantine(t *testing.T) {
	env := &machineEnv{pg: fleettest.RequirePG(t), my: fleettest.RequireMariaDB(t), modules: modules(t, "instance_restore")}
	runDirected(t, 1, sharePlanted, func(t *rapid.T) {
		ctx := context.Background()
		f := newFleet(t, env.pg, env.my)
		m := &machine{ctx: ctx, f: f, archives: filepath.Join(f.root, "archives"), modules: env.modules,
			names: []string{"a", "b"}, model: map[string]*state{}, lastDeletion: map[string]time.Time{}}
		for _, n := range m.names {
			m.model[n] = &state{digest: map[string]string{}}
			f.create(ctx, t, n, componentOrder)
			m.model[n].digest = m.observe(t, n)
		}
		res, err := softdelete.Delete(ctx, f.layout, softdelete.Request{Name: "a", ArchiveDir: m.archives, Reason: "model", RetentionDays: 30, Options: f.options()})
		m.afterDelete(t, "a", 30, res, err)
		m.Check(t)
		m.PlantInQuarantine(t)
		m.Check(t)
		if rapid.Bool().Draw(t, "crash") {
			m.crashRestoreOf(t, "a")
		} else {
			_, source, comps, _ := m.drawRestoreOf(t, "a", false)
			p := m.planRestore("a", comps, false)
			rr, err := softdelete.Restore(ctx, f.layout, softdelete.RestoreRequest{Name: "a", ArchiveDir: m.archives, Source: source, Components: comps, Options: f.options()})
			out := restoreOutcome{err: err}
			if rr != nil {
				out.source, out.restored, out.changed, out.sources = rr.Source, rr.Restored, rr.Changed, rr.Sources
			}
			m.expectRestore(t, "a", source, comps, false, p, out)
		}
		m.Check(t)
		purged, err := softdelete.Purge(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.layout}, ArchiveDir: m.archives, Name: "a", KeepLast: 1,
			Now: time.Now().Add(40 * 24 * time.Hour), PG: f.pg, Settings: map[string]any{typeMySQL: f.my}})
		m.expectPurge(t, softdelete.PurgeRequest{Name: "a", KeepLast: 1, Now: time.Now().Add(40 * 24 * time.Hour)}, purged, err, false)
		m.Check(t)
	})
}
