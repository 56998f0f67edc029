package mysql_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

func editTombstone(t *testing.T, path string, edit func(m map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	edit(m)
	data, err = json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

// TestMySQL_RetentionRecordRemoved (FINDINGS-6 #2): acme kept 30 days;
// by hand its quarantine schema's comment (its retention record) and its
// data's trash entry record are cleared and the tombstone's purge_after set to an hour ago: purge
// refuses, naming the missing record, and the schema stays. bob, due,
// whose purge was killed after marking its schema as being purged (the
// mark replaces the record; tombstone state purging): the next purge
// finishes it, and says the record went with the mark.
func TestMySQL_RetentionRecordRemoved(t *testing.T) {
	ctx := context.Background()
	_, db := server(t)
	n := newNextcloud(t, db)
	n.create(t, db, "acme")
	n.create(t, db, "bob")
	res, err := softdelete.Delete(ctx, n.l, softdelete.Request{Name: "acme", ArchiveDir: n.archives, Reason: "test", RetentionDays: 30, Options: n.opts})
	require.NoError(t, err)
	q := quarantineOf(t, res, "db")
	run(t, db, "ALTER DATABASE "+mariadb.QuoteIdent(q.To)+" COMMENT = ''")
	require.NoError(t, os.Remove(filepath.Join(filepath.Dir(quarantineOf(t, res, "data").To), kind.RetentionFile)))
	editTombstone(t, res.Tombstone.Path, func(m map[string]any) {
		m["purge_after"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	})
	purge := func(name string, now time.Time) (*softdelete.PurgeResult, error) {
		return softdelete.PurgeReport(ctx, softdelete.PurgeRequest{ArchiveDir: n.archives, Name: name, KeepLast: 1, Layouts: []*instance.Layout{n.l}, Now: now})
	}
	out, err := purge("acme", time.Now())
	require.Error(t, err)
	assert.Empty(t, out.Purged)
	assert.True(t, exists(t, db, q.To), "the quarantine schema was dropped 30 days early")
	var reasons []string
	for _, r := range out.Refused {
		reasons = append(reasons, r.Reason)
	}
	assert.Contains(t, strings.Join(reasons, "\n"), "the comment of database "+q.To)

	bob := n.delete(t, "bob")
	bq := quarantineOf(t, bob, "db")
	require.NoError(t, mariadb.MarkPurging(ctx, db, bq.To))
	editTombstone(t, bob.Tombstone.Path, func(m map[string]any) { m["state"] = softdelete.StatePurging })
	out, err = purge("bob", time.Now().Add(time.Hour))
	require.NoError(t, err)
	assert.False(t, exists(t, db, bq.To), "the interrupted purge was not finished")
	var purged []string
	for _, p := range out.Purged {
		purged = append(purged, p.Reason)
	}
	assert.Contains(t, strings.Join(purged, "\n"), "no retention record any more")
}
