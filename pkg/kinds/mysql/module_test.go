package mysql_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
)

// TestMySQL_Modules: through the instance_soft_delete, instance_restore
// and instance_purge binaries, with the server named by mysql_socket and
// mysql_user: a soft delete refused while a client is connected (named
// in msg), then done (the database gone from its name); a restore from
// the archive (source archive) that dumps byte for byte as before; a
// second soft delete (retention_days 0) and a purge that drops its
// quarantine.
func TestMySQL_Modules(t *testing.T) {
	c, db := server(t)
	lib := t.TempDir()
	fleettest.BuildFleetsafe(t, lib, "instance_soft_delete", "instance_restore", "instance_purge")
	n := newNextcloud(t, db)
	n.create(t, db, "acme")
	want := dumpOf(t, c, n.database("acme"))
	layout := filepath.Join(n.root, "nextcloud.yml")
	require.NoError(t, os.WriteFile(layout, []byte(fmt.Sprintf("app: nextcloud\ncomponents:\n"+
		"  - name: data\n    type: dir\n    path: %s/srv/{name}/data\n"+
		"  - name: db\n    type: mysql\n    database: %s_{name}\n", n.root, n.prefix)), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(n.root, "nolayouts"), 0o755))
	common := func(extra map[string]any) map[string]any {
		args := map[string]any{"name": "acme", "archive_dir": n.archives, "layout_file": layout, "layouts_dir": filepath.Join(n.root, "nolayouts"),
			"mysql_socket": mariadb.DefaultSocket, "mysql_user": "root"}
		for k, v := range extra {
			args[k] = v
		}
		return args
	}

	app, err := c.Open(t.Context(), n.database("acme"))
	require.NoError(t, err)
	require.NoError(t, app.Ping())
	res := fleettest.RunModule(t, filepath.Join(lib, "instance_soft_delete"), common(map[string]any{"reason": "test"}))
	assert.Equal(t, true, res["failed"], "%v", res)
	assert.Contains(t, res["msg"], "client connection(s): connection ")
	assert.Equal(t, false, res["changed"])
	require.NoError(t, app.Close())
	assert.True(t, exists(t, db, n.database("acme")))

	res = fleettest.RunModule(t, filepath.Join(lib, "instance_soft_delete"), common(map[string]any{"reason": "test"}))
	require.NotEqual(t, true, res["failed"], "%v", res)
	assert.Equal(t, true, res["changed"])
	assert.False(t, exists(t, db, n.database("acme")))

	res = fleettest.RunModule(t, filepath.Join(lib, "instance_restore"), common(map[string]any{"source": "archive"}))
	require.NotEqual(t, true, res["failed"], "%v", res)
	assert.Equal(t, want, dumpOf(t, c, n.database("acme")), "restored from the archive, byte for byte")

	res = fleettest.RunModule(t, filepath.Join(lib, "instance_soft_delete"), common(map[string]any{"reason": "again", "retention_days": 0}))
	require.NotEqual(t, true, res["failed"], "%v", res)
	var quarantines []string
	for _, q := range res["quarantined"].([]any) {
		if m := q.(map[string]any); m["component"] == "db" {
			quarantines = append(quarantines, m["to"].(string))
		}
	}
	require.Len(t, quarantines, 1)
	res = fleettest.RunModule(t, filepath.Join(lib, "instance_purge"), map[string]any{"archive_dir": n.archives, "layout_file": layout,
		"layouts_dir": filepath.Join(n.root, "nolayouts"), "name": "acme", "keep_last": 1, "mysql_socket": mariadb.DefaultSocket})
	require.NotEqual(t, true, res["failed"], "%v", res)
	assert.False(t, exists(t, db, quarantines[0]), "purged: %v", res)
	assert.Contains(t, fmt.Sprint(res["purged"]), quarantines[0])
}
