package attack6

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	instancepurge "github.com/fleetsafe/fleetsafe/modules/instance_purge"
	instancesoftdelete "github.com/fleetsafe/fleetsafe/modules/instance_soft_delete"
)

// localDelete soft deletes name into archive_dir arch, waiting for the
// session that filled the database to end.
func localDelete(t *testing.T, f *fleettest.Fleet, arch, name string, days int) map[string]any {
	t.Helper()
	var out map[string]any
	for range 300 {
		out = f.CallModule(t, instancesoftdelete.Module, "name", name, "reason", "attack6", "archive_dir", arch, "retention_days", days)
		if m, _ := out["msg"].(string); !strings.Contains(m, "open connection") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out["failed"] == true {
		t.Fatalf("soft delete %s: %v", name, out["msg"])
	}
	return out
}

// editTombstone sets purge_after of the tombstone of out to an hour ago
// and retention_days to 0, as root by hand.
func editTombstone(t *testing.T, out map[string]any) {
	t.Helper()
	p := out["tombstone"].(map[string]any)["path"].(string)
	b, err := os.ReadFile(p)
	fleettest.Must(t, err)
	var m map[string]any
	fleettest.Must(t, json.Unmarshal(b, &m))
	m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	m["retention_days"] = 0
	b, _ = json.MarshalIndent(m, "", "  ")
	fleettest.Must(t, os.WriteFile(p, b, 0o600))
}

// trashEntries returns the trash entry directory of each quarantined
// file component (the parent of its "to") and the quarantine database.
func trashEntries(out map[string]any) (dirs []string, db string) {
	for _, q := range out["quarantined"].([]any) {
		m := q.(map[string]any)
		if m["type"] == "postgresql" {
			db = m["to"].(string)
		} else {
			dirs = append(dirs, filepath.Dir(m["to"].(string)))
		}
	}
	return dirs, db
}

func psql(t *testing.T, sql string) string {
	t.Helper()
	b, err := exec.Command("psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %s: %v: %s", sql, err, b)
	}
	return strings.TrimSpace(string(b))
}

func dbExists(t *testing.T, db string) bool {
	return psql(t, "SELECT count(*) FROM pg_database WHERE datname = '"+db+"'") == "1"
}

// quarantineGone returns each part of out's quarantine that is gone.
func quarantineGone(t *testing.T, out map[string]any) []string {
	t.Helper()
	var gone []string
	for _, q := range out["quarantined"].([]any) {
		m := q.(map[string]any)
		to := m["to"].(string)
		if m["type"] == "postgresql" {
			if !dbExists(t, to) {
				gone = append(gone, to)
			}
		} else if _, err := os.Lstat(to); err != nil {
			gone = append(gone, to)
		}
	}
	return gone
}

// TestAttack6_RecordRemovedAndTombstoneEdited: promise 2. A deletion of
// acme kept 30 days; by hand its tombstone says purge_after an hour ago
// and every record of its quarantine is removed (the .fleetsafe-retention
// files, the quarantine database's comment). A missing record is no
// agreement: purge removes nothing of the quarantine.
func TestAttack6_RecordRemovedAndTombstoneEdited(t *testing.T) {
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	arch := filepath.Join(f.Root, "archives")
	out := localDelete(t, f, arch, "acme", 30)
	editTombstone(t, out)
	dirs, db := trashEntries(out)
	for _, d := range dirs {
		fleettest.Must(t, os.Remove(filepath.Join(d, ".fleetsafe-retention")))
	}
	psql(t, `COMMENT ON DATABASE "`+db+`" IS NULL`)
	p := f.CallModule(t, instancepurge.Module, "name", "acme", "archive_dir", arch, "keep_last", 0)
	if gone := quarantineGone(t, out); len(gone) > 0 {
		t.Fatalf("purge removed %d part(s) of a quarantine 30 days before its retention: %v; purge said: %.400s; first reason: %.700s", len(gone), gone, toString(p["msg"]), toString(p["purged"]))
	}
	if r := toString(p["refused"]); !strings.Contains(r, "keeps its own retention records") || !strings.Contains(r, ".fleetsafe-retention") || !strings.Contains(r, db) {
		t.Errorf("the refusal does not name the missing records: %.900s", r)
	}
}

// TestAttack6_RecordOfAnotherDeletion: promise 2. globex was deleted
// with retention 0 (its quarantine may go now); acme 30 days. By hand:
// acme's tombstone edited to an hour ago, and globex's records (its
// .fleetsafe-retention, its database comment) copied onto acme's
// quarantine. A record of another deletion is no agreement: purge removes
// nothing of acme's quarantine.
func TestAttack6_RecordOfAnotherDeletion(t *testing.T) {
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme", "globex"}, DB: true})
	arch := filepath.Join(f.Root, "archives")
	gl := localDelete(t, f, arch, "globex", 0)
	out := localDelete(t, f, arch, "acme", 30)
	editTombstone(t, out)
	gdirs, gdb := trashEntries(gl)
	rec, err := os.ReadFile(filepath.Join(gdirs[0], ".fleetsafe-retention"))
	fleettest.Must(t, err)
	dirs, db := trashEntries(out)
	for _, d := range dirs {
		fleettest.Must(t, os.WriteFile(filepath.Join(d, ".fleetsafe-retention"), rec, 0o600))
	}
	comment := psql(t, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '`+gdb+`'`)
	psql(t, `COMMENT ON DATABASE "`+db+`" IS '`+strings.ReplaceAll(comment, "'", "''")+`'`)
	p := f.CallModule(t, instancepurge.Module, "name", "acme", "archive_dir", arch, "keep_last", 0)
	if gone := quarantineGone(t, out); len(gone) > 0 {
		t.Errorf("purge removed %d part(s) of a quarantine 30 days before its retention: %v; purge said: %.400s", len(gone), gone, toString(p["msg"]))
	}
}

// TestAttack6_TenantEditsTheQuarantineDatabaseComment: promise 2 from
// the tenant's side. acme's database belongs to a tenant role, which
// keeps owning the quarantine database and so may COMMENT ON it. The
// tenant rewrites the record (same deletion id, purge_after an hour ago),
// then removes it; purge removes nothing either time. Then root edits the
// tombstone while the tenant's database has no record and the trash
// entries keep theirs: still nothing is removed.
func TestAttack6_TenantEditsTheQuarantineDatabaseComment(t *testing.T) {
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	arch := filepath.Join(f.Root, "archives")
	tenant := f.App + "_tenant"
	psql(t, `CREATE ROLE "`+tenant+`" NOLOGIN`)
	t.Cleanup(func() {
		_ = exec.Command("psql", "-X", "-d", "postgres", "-c", `DROP OWNED BY "`+tenant+`"; DROP ROLE "`+tenant+`"`).Run()
	})
	psql(t, `ALTER DATABASE "`+f.Database("acme")+`" OWNER TO "`+tenant+`"`)
	out := localDelete(t, f, arch, "acme", 30)
	_, db := trashEntries(out)
	if owner := psql(t, `SELECT datdba::regrole FROM pg_database WHERE datname = '`+db+`'`); strings.Trim(owner, `"`) != tenant {
		t.Fatalf("the quarantine database belongs to %s, not the tenant: the attack is not tried", owner)
	}
	id := out["tombstone"].(map[string]any)["id"].(string)
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	asTenant := func(sql string) {
		t.Helper()
		psql(t, `SET ROLE "`+tenant+`"; `+sql)
	}
	purge := func(step string) {
		t.Helper()
		p := f.CallModule(t, instancepurge.Module, "name", "acme", "archive_dir", arch, "keep_last", 0)
		if gone := quarantineGone(t, out); len(gone) > 0 {
			t.Fatalf("%s: purge removed %v before its retention; purge said: %.400s", step, gone, toString(p["msg"]))
		}
	}
	asTenant(`COMMENT ON DATABASE "` + db + `" IS '{"fleetsafe_quarantine":{"deletion":"` + id + `","deleted_at":"` + past + `","purge_after":"` + past + `"}}'`)
	purge("the tenant's record says purge_after passed")
	asTenant(`COMMENT ON DATABASE "` + db + `" IS NULL`)
	purge("the tenant removed the record")
	editTombstone(t, out)
	purge("the tombstone edited, the database's record removed, the trash entries' records kept")
}

// TestAttack6_OneRecordRemovedAndTombstoneEdited: promise 2. As in
// TestAttack6_RecordRemovedAndTombstoneEdited, but only the first trash
// entry's record is removed: the others still disagree with the edited
// tombstone, and purge removes nothing of the quarantine (not even the
// entry without a record).
func TestAttack6_OneRecordRemovedAndTombstoneEdited(t *testing.T) {
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	arch := filepath.Join(f.Root, "archives")
	out := localDelete(t, f, arch, "acme", 30)
	editTombstone(t, out)
	dirs, _ := trashEntries(out)
	fleettest.Must(t, os.Remove(filepath.Join(dirs[0], ".fleetsafe-retention")))
	p := f.CallModule(t, instancepurge.Module, "name", "acme", "archive_dir", arch, "keep_last", 0)
	if gone := quarantineGone(t, out); len(gone) > 0 {
		t.Errorf("purge removed %v of a quarantine 30 days before its retention; purge said: %.400s", gone, toString(p["msg"]))
	}
}

// TestAttack6_RecordsRemovedAndTombstoneFlagDropped: hole 2 closed, then
// attacked again by root who also edits what the tombstone says of the
// records. As in TestAttack6_RecordRemovedAndTombstoneEdited, plus the
// tombstone's retention_records dropped and its archive_path blanked
// (so that it looks like an archive-less tombstone of an earlier
// release). The manifest inside the verified archive, found by the
// deletion's id, still says records were written: purge removes nothing,
// neither the quarantine nor the archive.
func TestAttack6_RecordsRemovedAndTombstoneFlagDropped(t *testing.T) {
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme"}, DB: true})
	arch := filepath.Join(f.Root, "archives")
	out := localDelete(t, f, arch, "acme", 30)
	editTombstone(t, out)
	tp := out["tombstone"].(map[string]any)["path"].(string)
	b, err := os.ReadFile(tp)
	fleettest.Must(t, err)
	var m map[string]any
	fleettest.Must(t, json.Unmarshal(b, &m))
	if m["retention_records"] != true {
		t.Fatalf("the tombstone does not say records were written: %s", b)
	}
	delete(m, "retention_records")
	m["archive_path"], m["archive_sha256"] = "", ""
	b, _ = json.MarshalIndent(m, "", "  ")
	fleettest.Must(t, os.WriteFile(tp, b, 0o600))
	dirs, db := trashEntries(out)
	for _, d := range dirs {
		fleettest.Must(t, os.Remove(filepath.Join(d, ".fleetsafe-retention")))
	}
	psql(t, `COMMENT ON DATABASE "`+db+`" IS NULL`)
	p := f.CallModule(t, instancepurge.Module, "name", "acme", "archive_dir", arch, "keep_last", 0)
	if gone := quarantineGone(t, out); len(gone) > 0 {
		t.Fatalf("purge removed %d part(s) of a quarantine 30 days before its retention: %v; purge said: %.600s", len(gone), gone, toString(p["msg"]))
	}
	if r := toString(p["refused"]); !strings.Contains(r, "the manifest of archive") {
		t.Errorf("the refusal does not say the archive's manifest vouches for the records: %.900s", r)
	}
	if _, err := os.Stat(out["archive"].(map[string]any)["path"].(string)); err != nil {
		t.Errorf("the archive of a tombstone whose archive_path was blanked was purged: %v", err)
	}
}
