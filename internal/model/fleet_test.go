package model

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"

	_ "modernc.org/sqlite" // the sqlite driver of the lite component
)

// Component names of the machine's layout.
const (
	compConfig = "config" // dir, /etc/<app>/{name}
	compData   = "data"   // dir nested under the {name} element, /srv/<app>/{name}/data
	compEnv    = "env"    // file, /run/<app>/{name}.env
	compDB     = "db"     // postgresql, <app>_{name}
	compLite   = "lite"   // sqlite, /var/lib/<app>/{name}.sqlite
	compMy     = "my"     // mysql, m<app>_{name} on the MariaDB server
)

var componentOrder = []string{compConfig, compData, compEnv, compDB, compLite, compMy}

// candidateNames are the names the machine draws from: some prefixes of
// others, so that a name confused with another shows.
var candidateNames = []string{"a", "a-1", "b", "b-a", "c", "cc"}

// fleet is one generated fleet: a layout file under root and real
// databases named after a random app.
type fleet struct {
	root, app  string
	layoutFile string
	layout     *instance.Layout
	pg         pgdump.Conn
	my         mariadb.Conn
	tmpfs      bool // root is a tmpfs of its own
}

func (f *fleet) options() instance.Options {
	return instance.Options{PG: f.pg, SystemdDir: filepath.Join(f.root, "systemd"), SkipSizes: true,
		Settings: map[string]any{typeMySQL: f.my}}
}

func newFleet(t *rapid.T, pg pgdump.Conn, my mariadb.Conn) *fleet {
	root, err := os.MkdirTemp("", "fleetsafe-model-")
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{root: root, app: fleettest.RandomApp(), pg: pg, my: my}
	// The fleet's files live on a tmpfs of their own (as root), so that
	// FullDiskRestore can fill the instances' filesystem; removed last.
	if os.Geteuid() == 0 {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m,mode=0755", "tmpfs", root).CombinedOutput(); err == nil {
			f.tmpfs = true
		} else {
			t.Logf("no tmpfs for the fleet: %v: %s", err, out)
		}
	}
	t.Cleanup(func() {
		if f.tmpfs {
			if out, err := exec.Command("umount", root).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", root, err, out)
			}
		}
		os.RemoveAll(root)
	})
	t.Cleanup(func() {
		defer timed("teardown fleet", time.Now())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pool.recycle(ctx, pg, f.app); err != nil {
			t.Errorf("drop the databases of %s: %v", f.app, err)
		}
		if err := dropMySQLLike(ctx, my, f.app); err != nil {
			t.Errorf("drop the MariaDB databases of %s: %v", f.app, err)
		}
		os.RemoveAll(root)
	})
	layout := machineLayout(root, f.app, drawShapes(t))
	f.layoutFile = filepath.Join(root, "layout.yml")
	if err := os.WriteFile(f.layoutFile, []byte(layout), 0o644); err != nil {
		t.Fatal(err)
	}
	if f.layout, err = instance.LoadLayoutFile(f.layoutFile); err != nil {
		t.Fatalf("the machine's layout is refused: %v", err)
	}
	return f
}

func (f *fleet) path(comp, name string) string {
	c, _ := f.layout.Component(comp)
	_, _, full, err := instance.Locate(c, name)
	if err != nil {
		panic(err)
	}
	return full
}

func (f *fleet) myDatabase(name string) string {
	c, _ := f.layout.Component(compMy)
	return c.Template.Expand(name)
}

func (f *fleet) database(name string) string {
	c, _ := f.layout.Component(compDB)
	return c.Template.Expand(name)
}

// The shapes of the machine's layout: each component's template is drawn
// among these (%[1]s is the fleet's root, %[2]s its app), so that the
// machine runs over nested and flat directories, prefixes and suffixes
// around {name}, and database names with a suffix. Every combination is
// free of overlap (TestMachineLayoutsAccepted).
var (
	configShapes = []string{"%[1]s/etc/%[2]s/{name}", "%[1]s/etc/%[2]s/cfg-{name}", "%[1]s/etc/%[2]s/{name}.d"}
	dataShapes   = []string{"%[1]s/srv/%[2]s/{name}/data", "%[1]s/srv/%[2]s/{name}-data", "%[1]s/var/lib/%[2]s/data-{name}/current"}
	envShapes    = []string{"%[1]s/run/%[2]s/{name}.env", "%[1]s/run/%[2]s/env-{name}"}
	dbShapes     = []string{"%[2]s_{name}", "%[2]s_{name}_db", "x%[2]s_{name}"}
	liteShapes   = []string{"%[1]s/var/lib/%[2]s/{name}.sqlite", "%[1]s/var/lib/%[2]s/lite-{name}/app.db"}
	myShapes     = []string{"m%[2]s_{name}", "m%[2]s_{name}_my"}
)

type layoutShapes struct{ config, data, env, db, lite, my string }

func drawShapes(t *rapid.T) layoutShapes {
	return layoutShapes{
		config: rapid.SampledFrom(configShapes).Draw(t, "config path"),
		data:   rapid.SampledFrom(dataShapes).Draw(t, "data path"),
		env:    rapid.SampledFrom(envShapes).Draw(t, "env path"),
		db:     rapid.SampledFrom(dbShapes).Draw(t, "database"),
		lite:   rapid.SampledFrom(liteShapes).Draw(t, "sqlite path"),
		my:     rapid.SampledFrom(myShapes).Draw(t, "mysql database"),
	}
}

func machineLayout(root, app string, sh layoutShapes) string {
	return fmt.Sprintf(`app: %[2]s
components:
  - name: config
    type: dir
    path: `+sh.config+`
  - name: data
    type: dir
    path: `+sh.data+`
  - name: env
    type: file
    path: `+sh.env+`
  - name: db
    type: postgresql
    database: `+sh.db+`
  - name: lite
    type: sqlite
    path: `+sh.lite+`
  - name: my
    type: mysql
    database: `+sh.my+`
`, root, app)
}

// create makes one instance with the components drawn: files of other
// owners, links in and out, nested directories, fixed mtimes, a database
// with rows.
func (f *fleet) create(ctx context.Context, t *rapid.T, name string, comps []string) {
	mtime := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	has := func(c string) bool {
		for _, x := range comps {
			if x == c {
				return true
			}
		}
		return false
	}
	write := func(p string, data []byte, mode os.FileMode, uid int) {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 && uid >= 0 {
			if err := os.Lchown(p, uid, uid); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	if has(compConfig) {
		cfg := f.path(compConfig, name)
		write(filepath.Join(cfg, "app.ini"), []byte("instance = "+name+"\n"), 0o640, -1)
		link("/etc/hostname", filepath.Join(cfg, "hostname-link"))
		touch(t, cfg, mtime)
	}
	if has(compData) {
		data := f.path(compData, name)
		blob := make([]byte, 2048)
		_, _ = rand.Read(blob)
		write(filepath.Join(data, "depot", "a1", "blob.bin"), blob, 0o600, 1000)
		write(filepath.Join(data, "depot", "notes.txt"), []byte("notes of "+name+"\n"), 0o644, 33)
		link("depot/a1/blob.bin", filepath.Join(data, "latest"))
		touch(t, filepath.Join(data, "depot", "a1"), mtime)
		touch(t, filepath.Join(data, "depot"), mtime)
		touch(t, data, mtime)
	}
	if has(compEnv) {
		write(f.path(compEnv, name), []byte("NAME="+name+"\nSECRET=s3cr3t\n"), 0o600, 1000)
	}
	if has(compLite) {
		createSQLite(t, f.path(compLite, name), name)
	}
	if has(compMy) {
		createMySQL(ctx, t, f.my, f.myDatabase(name), name)
	}
	if has(compDB) {
		defer timed("setup database", time.Now())
		admin, err := f.pg.Open(ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		if err := pool.create(ctx, admin, f.database(name)); err != nil {
			t.Fatal(err)
		}
		err = withSession(ctx, f.pg, f.database(name), func(db *sql.Conn) error {
			_, err := db.ExecContext(ctx, fmt.Sprintf(`
			CREATE TABLE public.content (id serial PRIMARY KEY, label text NOT NULL, body bytea);
			INSERT INTO public.content (label, body) SELECT 'doc-' || g || '-%s', decode(md5(g::text), 'hex') FROM generate_series(1, 20) g;`, name))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func touch(t *rapid.T, p string, mtime time.Time) {
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// createSQLite makes a SQLite database in WAL mode whose newest rows are
// only in its -wal, with no connection left open (the files of an open
// database, copied while nothing writes: what a stopped application
// leaves).
func createSQLite(t *rapid.T, p, name string) {
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "fleetsafe-model-sqlite-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	live := filepath.Join(tmp, "live.db")
	db, err := sql.Open("sqlite", "file:"+live)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA journal_mode = WAL", "PRAGMA wal_autocheckpoint = 0",
		"CREATE TABLE content (id INTEGER PRIMARY KEY, label TEXT NOT NULL, body BLOB)",
		"INSERT INTO content (label) VALUES ('first')", "PRAGMA wal_checkpoint(TRUNCATE)",
		"INSERT INTO content (label, body) VALUES ('doc-" + name + "', randomblob(64))"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, suf := range []string{"", "-wal", "-shm"} {
		data, err := os.ReadFile(live + suf)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+suf, data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}
