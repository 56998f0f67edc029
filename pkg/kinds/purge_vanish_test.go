package kinds_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// keepDB is testDB keeping its retention record beside the quarantine
// (<quarantine>.retention, which follows it to its purging name), as a
// database kind keeps it in the database's comment. With vanishOnRead
// set, the quarantine and its record disappear just before the record is
// read: what a killed purge's DROP DATABASE, still running in the server
// after its client died, does when it commits between the next purge's
// first look at the quarantine and its read of the record.
type keepDB struct{ testDB }

const keepDBType = "fstestkeep"

var (
	_            kind.RetentionKeeper = keepDB{}
	vanishOnRead atomic.Bool
)

func init() { kind.Register(keepDB{}) }

func (keepDB) Type() string { return keepDBType }

func record(env kind.Env, db string) string { return file(env, db) + ".retention" }

func (keepDB) KeepRetention(_ context.Context, env kind.Env, m kind.Move, r kind.Retention) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return os.WriteFile(record(env, m.To), data, 0o600)
}

func (keepDB) Retention(_ context.Context, env kind.Env, m kind.Move) (kind.Retention, bool, string, error) {
	if vanishOnRead.Load() {
		for _, db := range []string{m.To, purging(m.To)} {
			for _, p := range []string{file(env, db), record(env, db)} {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return kind.Retention{}, false, "", err
				}
			}
		}
	}
	for _, db := range []string{m.To, purging(m.To)} {
		data, err := os.ReadFile(record(env, db))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return kind.Retention{}, false, "", err
		}
		var r kind.Retention
		if err := json.Unmarshal(data, &r); err != nil {
			return kind.Retention{}, false, "", err
		}
		return r, true, record(env, db), nil
	}
	return kind.Retention{}, false, "", nil
}

func (keepDB) PurgeMark(_ context.Context, env kind.Env, m kind.Move) error {
	if !exists(file(env, m.To)) {
		return nil
	}
	if err := os.Rename(record(env, m.To), record(env, purging(m.To))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(file(env, m.To), file(env, purging(m.To)))
}

// TestPurge_PartGoneBetweenLookAndRecord: a quarantined database that
// disappears with its retention record between purge's first look and
// its read of the record (a killed purge's drop committing meanwhile) is
// purged, not refused for a missing record; the deletion ends purged.
// Before, purge refused ("record missing") and the next run finished.
func TestPurge_PartGoneBetweenLookAndRecord(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dbs := filepath.Join(root, "dbs")
	require.NoError(t, os.MkdirAll(dbs, 0o700))
	l, err := instance.ParseLayout([]byte(fmt.Sprintf("app: keep\ncomponents:\n"+
		"  - name: db\n    type: %s\n    database: keep_{name}\n", keepDBType)), "keep.yml")
	require.NoError(t, err)
	opts := instance.Options{SkipSizes: true, SystemdDir: filepath.Join(root, "systemd"), Settings: map[string]any{testDBType: dbs}}
	require.NoError(t, os.WriteFile(filepath.Join(dbs, "keep_acme.db"), []byte("rows of acme"), 0o600))
	archives := filepath.Join(root, "archives")
	res, err := softdelete.Delete(ctx, l, softdelete.Request{Name: "acme", ArchiveDir: archives, Reason: "test", RetentionDays: 1, Options: opts})
	require.NoError(t, err)
	require.Len(t, res.Quarantined, 1)
	env := opts.Env()
	require.FileExists(t, record(env, res.Quarantined[0].To), "the quarantine keeps its record")

	vanishOnRead.Store(true)
	t.Cleanup(func() { vanishOnRead.Store(false) })
	out, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: archives, Name: "acme", KeepLast: 1, Layouts: []*instance.Layout{l}, Settings: opts.Settings,
		Now: res.Tombstone.PurgeAfter.Add(time.Minute)})
	require.NoError(t, err, "a part gone with its record is no disagreement")
	assert.Empty(t, out.Refused)
	ts, err := softdelete.ReadTombstone(res.Tombstone.Path)
	require.NoError(t, err)
	assert.Equal(t, softdelete.StatePurged, ts.State)
}
