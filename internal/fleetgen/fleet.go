// Package fleetgen generates real fleets: instance directories with files,
// systemd unit trees, PostgreSQL databases on the real server, and backups
// taken with the real tools. The demo's sandbox (cmd/fleetsafe-sandbox)
// uses it directly; tests use it through internal/fleettest, which adds
// what needs package testing. It never imports testing.
package fleetgen

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// Spec says what fleet to generate.
type Spec struct {
	// Root is where directories go; the layout file is Root/layout.yml.
	Root string
	// App names the application; it prefixes every database, so a random
	// one keeps concurrent test runs apart. Default: "fs" + random hex.
	App string
	// Names of the instances to create.
	Names []string
	// DB adds a postgresql component with a real database per instance.
	DB bool
	// PG is the server for databases.
	PG pgdump.Conn
	// Rows per database table.
	Rows int
	// Files per instance data directory (default 5).
	Files int
	// Backups adds backup rules to the layout (see WriteBackups).
	Backups bool
	// DBPrefix starts every database name (default App + "_"), so that
	// sandbox hosts sharing one server keep their databases apart.
	DBPrefix string
}

// Fleet is a generated fleet.
type Fleet struct {
	Spec
	LayoutFile string
	Layout     *instance.Layout
	SystemdDir string
}

// RandomApp returns an application name unique to this run.
func RandomApp() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "fs" + hex.EncodeToString(b)
}

// LayoutYAML returns the layout of a generated fleet.
func LayoutYAML(root, app string, db bool) string {
	return layoutYAML(root, app, app+"_", db)
}

func layoutYAML(root, app, dbPrefix string, db bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "app: %s\ncomponents:\n", app)
	fmt.Fprintf(&b, "  - name: config\n    type: dir\n    path: %s/etc/%s/{name}\n", root, app)
	fmt.Fprintf(&b, "  - name: data\n    type: dir\n    path: %s/srv/%s/{name}/data\n", root, app)
	fmt.Fprintf(&b, "  - name: logs\n    type: dir\n    path: %s/log/%s/{name}\n    optional: true\n    backup: false\n", root, app)
	fmt.Fprintf(&b, "  - name: service\n    type: systemd_unit\n    unit: %s@{name}.service\n    backup: false\n", app)
	if db {
		fmt.Fprintf(&b, "  - name: database\n    type: postgresql\n    database: %s{name}\n", dbPrefix)
	}
	return b.String()
}

// backupsYAML is the backups: section of a generated fleet.
func backupsYAML(root string, db bool) string {
	var b strings.Builder
	b.WriteString("backups:\n")
	fmt.Fprintf(&b, "  - component: config\n    path: %s/backups/{name}/config-*.tar.gz\n    format: tar_gz\n    max_age: 26h\n", root)
	fmt.Fprintf(&b, "  - component: data\n    path: %s/backups/{name}/data-*.tar.zst\n    format: tar_zst\n    max_age: 26h\n    max_shrink: 50%%\n", root)
	if db {
		fmt.Fprintf(&b, "  - component: database\n    path: %s/backups/{name}/db-*.dump\n    format: pg_custom\n    max_age: 26h\n    min_size: 1KiB\n    max_shrink: 50%%\n    checksum: sha256_sidecar\n", root)
	}
	return b.String()
}

// Generate creates the fleet on disk and in PostgreSQL.
func Generate(ctx context.Context, s Spec) (*Fleet, error) {
	if s.App == "" {
		s.App = RandomApp()
	}
	if s.Files == 0 {
		s.Files = 5
	}
	if s.DBPrefix == "" {
		s.DBPrefix = s.App + "_"
	}
	f := &Fleet{Spec: s, LayoutFile: filepath.Join(s.Root, "layout.yml"), SystemdDir: filepath.Join(s.Root, "systemd")}
	if err := os.MkdirAll(s.Root, 0o755); err != nil {
		return nil, err
	}
	layout := layoutYAML(s.Root, s.App, s.DBPrefix, s.DB)
	if s.Backups {
		layout += backupsYAML(s.Root, s.DB)
	}
	if err := os.WriteFile(f.LayoutFile, []byte(layout), 0o644); err != nil {
		return nil, err
	}
	l, err := instance.LoadLayoutFile(f.LayoutFile)
	if err != nil {
		return nil, err
	}
	f.Layout = l
	for _, name := range s.Names {
		if err := f.AddInstance(ctx, name); err != nil {
			return nil, fmt.Errorf("instance %s: %w", name, err)
		}
	}
	return f, nil
}

// Path returns the path of a dir component of an instance.
func (f *Fleet) Path(component, name string) string {
	c, _ := f.Layout.Component(component)
	_, _, full, _ := instance.Locate(c, name)
	return full
}

// Database returns the database name of an instance.
func (f *Fleet) Database(name string) string { return f.DBPrefix + name }

// Options returns discovery options for this fleet.
func (f *Fleet) Options() instance.Options {
	return instance.Options{PG: f.PG, SystemdDir: f.SystemdDir}
}

// AddInstance creates every component of one instance.
func (f *Fleet) AddInstance(ctx context.Context, name string) error {
	mtime := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	cfg := f.Path("config", name)
	data := f.Path("data", name)
	logs := f.Path("logs", name)
	for _, d := range []string{cfg, filepath.Join(data, "depot", "a1"), filepath.Join(data, "preview"), logs} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	files := map[string]string{
		filepath.Join(cfg, "development.ini"): fmt.Sprintf("[app:main]\ninstance = %s\nsqlalchemy.url = postgresql:///%s\n", name, f.Database(name)),
		filepath.Join(logs, "tracim.log"):     "started " + name + "\n",
	}
	for i := range f.Files {
		files[filepath.Join(data, "depot", "a1", fmt.Sprintf("file-%03d.bin", i))] = strings.Repeat(fmt.Sprintf("%s-%d;", name, i), 50+i*13)
	}
	for p, content := range files {
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			return err
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			return err
		}
	}
	// Files of other owners, so that restores must give owners back.
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(data, "depot", "a1", "file-000.bin"), 1000, 1000); err != nil {
			return err
		}
		if err := os.Lchown(filepath.Join(data, "preview"), 33, 33); err != nil {
			return err
		}
	}
	// An instance may legitimately link outside itself.
	if err := os.Symlink("/etc/hostname", filepath.Join(cfg, "hostname-link")); err != nil {
		return err
	}
	if err := os.Symlink("depot/a1/file-000.bin", filepath.Join(data, "latest")); err != nil {
		return err
	}
	wants := filepath.Join(f.SystemdDir, "multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		return err
	}
	unit := filepath.Join(wants, f.App+"@"+name+".service")
	if err := os.Symlink("/lib/systemd/system/"+f.App+"@.service", unit); err != nil && !os.IsExist(err) {
		return err
	}
	if f.DB {
		return f.CreateDatabase(ctx, name)
	}
	return nil
}

// CreateDatabase creates and fills the database of an instance.
func (f *Fleet) CreateDatabase(ctx context.Context, name string) error {
	admin, err := f.PG.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer admin.Close()
	dbName := f.Database(name)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(dbName)); err != nil {
		return fmt.Errorf("create database %s: %w", dbName, err)
	}
	if err := f.fill(ctx, name, dbName); err != nil {
		return err
	}
	return waitSessionsGone(ctx, admin, dbName)
}

// fill creates and fills the tables of an instance's database; its
// session is closed when it returns.
func (f *Fleet) fill(ctx context.Context, name, dbName string) error {
	// The application's own session: the database's search_path, as the
	// application has it (the module's sessions pin theirs).
	tenant := f.PG
	tenant.TenantSearchPath = true
	db, err := tenant.Open(ctx, dbName)
	if err != nil {
		return err
	}
	defer db.Close()
	rows := f.Rows
	if rows == 0 {
		rows = 100
	}
	_, err = db.ExecContext(ctx, fmt.Sprintf(`
		CREATE TABLE content (id serial PRIMARY KEY, label text NOT NULL, body bytea, created timestamptz DEFAULT now());
		CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE);
		INSERT INTO content (label, body) SELECT 'doc-' || g || '-%[1]s', decode(md5(g::text), 'hex') FROM generate_series(1, %[2]d) g;
		INSERT INTO users (email) VALUES ('admin@%[1]s.example');
	`, name, rows))
	if err != nil {
		return fmt.Errorf("fill database %s: %w", dbName, err)
	}
	return nil
}

// WaitBackendGone waits until the server process pid (a session this
// test closed) has left pg_stat_activity, for at most sessionsGoneWait.
func WaitBackendGone(ctx context.Context, pg pgdump.Conn, pid int) error {
	admin, err := pg.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer admin.Close()
	deadline := time.Now().Add(sessionsGoneWait)
	for {
		var n int
		if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
			return fmt.Errorf("server process %d: %w", pid, err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server process %d of a closed session is still there after %v", pid, sessionsGoneWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sessionsGoneWait bounds waitSessionsGone: far longer than a backend
// takes to exit, even on a loaded machine.
const sessionsGoneWait = 2 * time.Minute

// waitSessionsGone waits until the server has ended every client session
// on dbName (autovacuum workers, which the product does not count, may
// come and go). A backend outlives its client's close by a moment (longer on a
// loaded machine), and a soft delete started at once would rightly
// refuse the database for that open connection: the fleet is handed
// over only once the server says the filling session is gone.
func waitSessionsGone(ctx context.Context, admin *sql.DB, dbName string) error {
	deadline := time.Now().Add(sessionsGoneWait)
	for {
		var n int
		if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'`, dbName).Scan(&n); err != nil {
			return fmt.Errorf("sessions on database %s: %w", dbName, err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("database %s: %d session(s) still open %v after the fill closed its own", dbName, n, sessionsGoneWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// DropDatabases drops every database of the fleet's app, quarantined ones
// included.
func (f *Fleet) DropDatabases(ctx context.Context) error {
	return DropDatabasesLike(ctx, f.PG, f.App)
}

// DropDatabasesLike drops every database whose name contains marker.
func DropDatabasesLike(ctx context.Context, pg pgdump.Conn, marker string) error {
	admin, err := pg.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer admin.Close()
	rows, err := admin.QueryContext(ctx, `SELECT datname FROM pg_database WHERE strpos(datname, $1) > 0`, marker)
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgdump.QuoteIdent(n)+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", n, err)
		}
	}
	return nil
}

// CreateDatabaseEmpty creates the (empty) database of an instance.
func (f *Fleet) CreateDatabaseEmpty(ctx context.Context, name string) error {
	admin, err := f.PG.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = admin.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(f.Database(name)))
	return err
}
