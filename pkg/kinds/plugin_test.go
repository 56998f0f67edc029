package kinds_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

func TestRegistry_HasEveryShippedKind(t *testing.T) {
	for _, typ := range []string{"dir", "file", "mysql", "postgresql", "sqlite", "systemd_unit"} {
		k, ok := kind.Lookup(typ)
		require.True(t, ok, typ)
		assert.Equal(t, typ, k.Type())
	}
	assert.Panics(t, func() { kind.Register(testDB{}) }, "a second kind for one type is refused")
}

// An unknown type is an error that names the file, line, key and value,
// and lists every registered kind (the test kind too: the list comes from
// the registry).
func TestLayout_UnknownTypeNamesFileLineKeyValue(t *testing.T) {
	_, err := instance.ParseLayout([]byte("app: x\ncomponents:\n  - name: data\n    type: nosuch\n    path: /srv/x/{name}\n"), "x.yml")
	var le *instance.LayoutError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "x.yml", le.File)
	assert.Equal(t, 4, le.Line)
	assert.Equal(t, "components[0].type", le.Key)
	assert.Equal(t, "nosuch", le.Value)
	assert.Contains(t, le.Msg, "unknown component type (dir, file, fstestdb, fstestkeep, mysql, postgresql, sqlite or systemd_unit)")

	_, err = instance.ParseLayout([]byte("app: x\ncomponents:\n  - name: db\n    type: fstestdb\n    path: /srv/x/{name}\n"), "x.yml")
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "components[0].path", le.Key)
	assert.Contains(t, le.Msg, "a fstestdb component takes database, not path")

	_, err = instance.ParseLayout([]byte("app: x\ncomponents:\n  - name: db\n    type: fstestdb\n    database: 'x{name}'\n"), "x.yml")
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "components[0].database", le.Key)
	assert.Equal(t, "x{name}", le.Value)
	assert.Contains(t, le.Msg, "literal prefix ending with _", "the kind's own template check")
}

// A kind registered from a test file alone (testDB: the dump shape, a
// quarantine it purges itself) goes through discovery, soft delete
// (archive, verification, quarantine), restore from quarantine and from
// the archive, RESTORE.md and purge, beside a dir component, with no
// change anywhere else.
func TestPlugin_TestKindLifecycle(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dbs := filepath.Join(root, "dbs")
	require.NoError(t, os.MkdirAll(dbs, 0o700))
	l, err := instance.ParseLayout([]byte(fmt.Sprintf("app: plug\ncomponents:\n"+
		"  - name: data\n    type: dir\n    path: %s/srv/{name}\n"+
		"  - name: db\n    type: fstestdb\n    database: plug_{name}\n", root)), "plug.yml")
	require.NoError(t, err)
	opts := instance.Options{SkipSizes: true, SystemdDir: filepath.Join(root, "systemd"),
		Settings: map[string]any{testDBType: dbs}}
	dbFile := filepath.Join(dbs, "plug_acme.db")
	require.NoError(t, os.MkdirAll(filepath.Join(root, "srv", "acme"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "srv", "acme", "f"), []byte("files"), 0o644))
	require.NoError(t, os.WriteFile(dbFile, []byte("rows of acme"), 0o600))

	insts, err := l.Discover(ctx, opts)
	require.NoError(t, err)
	require.Len(t, insts, 1)
	st, _ := insts[0].State("db")
	assert.True(t, st.Present)
	assert.Equal(t, "plug_acme", st.Locator)

	archives := filepath.Join(root, "archives")
	del := func() *softdelete.Result {
		res, err := softdelete.Delete(ctx, l, softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "test", Options: opts})
		require.NoError(t, err)
		require.NoFileExists(t, dbFile)
		return res
	}

	// The kind's preflight refuses, nothing changes.
	require.NoError(t, os.WriteFile(dbFile+".lock", nil, 0o600))
	_, err = softdelete.Delete(ctx, l, softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "test", Options: opts})
	var re *softdelete.RefusedError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Reason, "test database plug_acme is locked")
	assert.FileExists(t, dbFile)
	require.NoError(t, os.Remove(dbFile+".lock"))

	res := del()
	var q softdelete.QuarantineMove
	for _, m := range res.Quarantined {
		if m.Component == "db" {
			q = m
		}
	}
	require.Equal(t, testDBType, q.Type)
	assert.FileExists(t, filepath.Join(dbs, q.To+".db"))
	m, err := archive.VerifyArchive(ctx, res.Archive.Path)
	require.NoError(t, err)
	require.Len(t, m.Databases, 1)
	assert.Equal(t, "components/db.testdump", m.Databases[0].Path)
	runbook := string(archive.Runbook(m, res.Archive.Path))
	assert.Contains(t, runbook, "### db: test database `plug_acme`")
	assert.Contains(t, runbook, ", and `cp`.")

	// Back from quarantine: the kind compares it with the dump first.
	rr, err := softdelete.Restore(ctx, l, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: opts})
	require.NoError(t, err)
	assert.Equal(t, softdelete.SourceQuarantine, rr.Source)
	got, err := os.ReadFile(dbFile)
	require.NoError(t, err)
	assert.Equal(t, "rows of acme", string(got))

	// A quarantined copy that differs comes back from the archive, staged
	// and put in place by the kind.
	res = del()
	for _, m := range res.Quarantined {
		if m.Component == "db" {
			q = m
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(dbs, q.To+".db"), []byte("tampered"), 0o600))
	rr, err = softdelete.Restore(ctx, l, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: opts})
	require.NoError(t, err)
	assert.Equal(t, "archive:"+res.Archive.Path, rr.Sources["db"])
	assert.Contains(t, strings.Join(rr.Notes, "\n"), "its content differs from the verified dump in its archive")
	got, err = os.ReadFile(dbFile)
	require.NoError(t, err)
	assert.Equal(t, "rows of acme", string(got))
	entries, err := os.ReadDir(dbs)
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), "fsstage_"), "no staging leftover: %s", e.Name())
	}

	// Purge removes the kind's own quarantine (the tampered one of the
	// earlier deletion, restored from the archive, and this one).
	res = del()
	for _, m := range res.Quarantined {
		if m.Component == "db" {
			q = m
		}
	}
	pr, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: archives, KeepLast: 1, Layouts: []*instance.Layout{l},
		Now: time.Now().Add(24 * time.Hour), Settings: map[string]any{testDBType: dbs}})
	require.NoError(t, err)
	found := false
	for _, p := range pr.Purged {
		if p.Path == q.To {
			found = true
			assert.Equal(t, "database", p.Kind)
		}
	}
	assert.True(t, found, "the quarantined test database is purged: %+v", pr.Purged)
	for _, name := range []string{q.To, "fsp_" + strings.TrimPrefix(q.To, "fsq_")} {
		_, err := os.Lstat(filepath.Join(dbs, name+".db"))
		assert.True(t, errors.Is(err, os.ErrNotExist), "%s is gone", name)
	}
}
