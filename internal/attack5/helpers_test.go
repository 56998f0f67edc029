// Package attack5 holds hostile tests of PostgreSQL restores
// (instance_restore source=backup, pg_custom and pg_plain), driven through
// the real module binary on real PostgreSQL: each names the promise it
// attacks and fails while that promise is broken.
package attack5

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

var modules = fleettest.NewLibrary("attack5-lib", "instance_restore", "backup_verify", "instance_soft_delete")

// TestMain removes the modules built for the run.
func TestMain(m *testing.M) {
	code := m.Run()
	modules.Remove()
	os.Exit(code)
}

var must = fleettest.Must

// fx is one host: a layout with one postgresql component `database`
// (database <app>_{name}) and one backup rule for it.
type fx struct {
	root, app, layout string
	pg                pgdump.Conn
}

func newFx(t *testing.T, format string) *fx {
	t.Helper()
	x := &fx{root: t.TempDir(), app: fleettest.RandomApp(), pg: fleettest.RequirePG(t)}
	// The tenant's view: the psql of the tests sees the database's own
	// search_path, and the modules it starts get no PGOPTIONS from it, so
	// that they must pin their search_path themselves.
	x.pg.TenantSearchPath = true
	x.layout = filepath.Join(x.root, "layout.yml")
	ext := map[string]string{"pg_custom": "dump", "pg_plain": "sql"}[format]
	y := fmt.Sprintf("app: %s\ncomponents:\n  - name: database\n    type: postgresql\n    database: %s_{name}\nbackups:\n  - component: database\n    path: %s/bk/{name}/db-*.%s\n    format: %s\n",
		x.app, x.app, x.root, ext, format)
	must(t, os.WriteFile(x.layout, []byte(y), 0o644))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = fleettest.DropDatabasesLike(ctx, x.pg, x.app)
		// roles of the test: <app>_*
		out, _ := exec.Command("psql", "-X", "-At", "-d", "postgres", "-c",
			fmt.Sprintf("SELECT rolname FROM pg_roles WHERE rolname LIKE '%s\\_%%'", x.app)).Output()
		for _, r := range strings.Fields(string(out)) {
			_ = exec.Command("psql", "-X", "-d", "postgres", "-c", fmt.Sprintf("DROP OWNED BY %q; DROP ROLE %q", r, r)).Run()
		}
	})
	return x
}

func (x *fx) db(name string) string { return x.app + "_" + name }

// restore runs the real module binary with source=backup.
func (x *fx) restore(t *testing.T, name string, env ...string) map[string]any {
	t.Helper()
	c := modules.Cmd(t, "instance_restore", map[string]any{"name": name, "layout_file": x.layout, "source": "backup"})
	c.Env = append(append(os.Environ(), x.pg.Env()...), env...)
	res := fleettest.ModuleResult(t, c)
	delete(res, "invocation")
	return res
}

// psql runs sql in database db as the test's (superuser) role.
func (x *fx) psql(t *testing.T, db, sql string) string {
	t.Helper()
	out, err := x.psqlErr(db, sql)
	if err != nil {
		t.Fatalf("psql %s: %v: %s", db, err, out)
	}
	return out
}

func (x *fx) psqlErr(db, sql string) (string, error) {
	c := exec.Command("psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql)
	c.Env = append(os.Environ(), x.pg.Env()...)
	out, err := c.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// dump writes a real pg_dump of database db as acme's backup, 2 hours old
// (format custom or plain), and returns its path.
func (x *fx) dump(t *testing.T, db, name, format string) string {
	t.Helper()
	ext := map[string]string{"custom": "dump", "plain": "sql"}[format]
	when := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	out := filepath.Join(x.root, "bk", name, "db-"+when.UTC().Format("20060102T150405")+"."+ext)
	must(t, os.MkdirAll(filepath.Dir(out), 0o750))
	c := exec.Command("pg_dump", "--format="+format, "--file="+out, "--dbname="+db)
	c.Env = append(os.Environ(), x.pg.Env()...)
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v: %s", err, b)
	}
	must(t, os.Chtimes(out, when, when))
	return out
}

// superuser is the test's own role (root's peer role), a superuser.
func superuser(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("psql", "-X", "-At", "-d", "postgres", "-c", "SELECT current_user").Output()
	if err != nil {
		t.Fatalf("psql: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func recoveryOf(res map[string]any, component string) map[string]any {
	list, _ := res["recovery"].([]any)
	for _, c := range list {
		if m, ok := c.(map[string]any); ok && m["component"] == component {
			return m
		}
	}
	return nil
}

// restoreRoles lists the temporary restore roles of restores into acme's
// database (other tests run restores, and kill them, at once: their roles
// are named after their own databases; callers compare before/after).
func restoreRoles(t *testing.T, x *fx) map[string]bool {
	t.Helper()
	out := x.psql(t, "postgres", fmt.Sprintf("SELECT rolname FROM pg_roles WHERE starts_with(rolname, '%s')", postgresql.RestoreRolePrefixFor(x.db("acme"))))
	m := map[string]bool{}
	for _, r := range strings.Fields(out) {
		m[r] = true
	}
	return m
}
