// Package attack3 holds hostile tests of restores from regular backups
// (instance_restore source=backup), run through the real module binary on
// real files, real tar/gzip/zstd/zip and real PostgreSQL: each names the
// promise it attacks and fails while that promise is broken.
package attack3

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// modules holds the module binaries, built once per test binary.
var modules = fleettest.NewLibrary("attack3-lib", "instance_restore")

// TestMain removes the modules built for the run.
func TestMain(m *testing.M) {
	code := m.Run()
	modules.Remove()
	os.Exit(code)
}

// library builds instance_restore once per test binary.
func library(t *testing.T) string {
	t.Helper()
	return modules.Dir(t)
}

// fx is one host: a layout with a dir component data and, with a
// database format, a postgresql component database, each with one
// backup rule.
type fx struct {
	root, app, layout string
	dataPath          string // the data component's path, {name} included
	pg                pgdump.Conn
	db                bool
}

// newFx writes the layout. dataRule is the data rule's path (relative to
// root, with {name}), dataFormat its format; dbFormat "" for no database.
func newFx(t *testing.T, dataRule, dataFormat, dbFormat string) *fx {
	t.Helper()
	return newFxPath(t, "", dataRule, dataFormat, dbFormat)
}

// newFxPath is newFx with the data component at root/dataPath (default
// srv/<app>/{name}/data).
func newFxPath(t *testing.T, dataPath, dataRule, dataFormat, dbFormat string) *fx {
	t.Helper()
	x := &fx{root: t.TempDir(), app: fleettest.RandomApp()}
	if dataPath == "" {
		dataPath = "srv/" + x.app + "/{name}/data"
	}
	x.dataPath = filepath.Join(x.root, dataPath)
	x.layout = filepath.Join(x.root, "layout.yml")
	var b strings.Builder
	fmt.Fprintf(&b, "app: %s\ncomponents:\n", x.app)
	fmt.Fprintf(&b, "  - name: data\n    type: dir\n    path: %s\n", x.dataPath)
	if dbFormat != "" {
		x.db = true
		x.pg = fleettest.RequirePG(t).Tenant() // the tenant's view: the modules must pin search_path themselves
		fmt.Fprintf(&b, "  - name: database\n    type: postgresql\n    database: %s_{name}\n", x.app)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = fleettest.DropDatabasesLike(ctx, x.pg, x.app)
		})
	}
	b.WriteString("backups:\n")
	fmt.Fprintf(&b, "  - component: data\n    path: %s/%s\n    format: %s\n", x.root, dataRule, dataFormat)
	switch dbFormat {
	case "pg_plain":
		fmt.Fprintf(&b, "  - component: database\n    path: %s/bk/{name}/db-*.sql\n    format: pg_plain\n", x.root)
	case "pg_custom":
		fmt.Fprintf(&b, "  - component: database\n    path: %s/bk/{name}/db-*.dump\n    format: pg_custom\n", x.root)
	}
	must(t, os.WriteFile(x.layout, []byte(b.String()), 0o644))
	return x
}

func (x *fx) data(name string) string {
	return strings.ReplaceAll(x.dataPath, "{name}", name)
}

func (x *fx) dbName(name string) string { return x.app + "_" + name }

// restore runs the real module binary with source=backup.
func (x *fx) restore(t *testing.T, name string, kv ...any) map[string]any {
	t.Helper()
	return x.restoreEnv(t, name, nil, kv...)
}

func (x *fx) restoreEnv(t *testing.T, name string, env []string, kv ...any) map[string]any {
	t.Helper()
	res := fleettest.ModuleResult(t, x.cmd(t, name, env, kv...))
	delete(res, "invocation")
	return res
}

func (x *fx) cmd(t *testing.T, name string, env []string, kv ...any) *exec.Cmd {
	t.Helper()
	a := map[string]any{"name": name, "layout_file": x.layout, "source": "backup"}
	for i := 0; i+1 < len(kv); i += 2 {
		a[kv[i].(string)] = kv[i+1]
	}
	c := modules.Cmd(t, "instance_restore", a)
	c.Env = append(append(os.Environ(), x.pg.Env()...), env...)
	return c
}

// psql runs sql in database db.
func (x *fx) psql(t *testing.T, db, sql string) string {
	t.Helper()
	c := exec.Command("psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql)
	c.Env = append(os.Environ(), x.pg.Env()...)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("psql %s: %v: %s", db, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (x *fx) createDB(t *testing.T, db, sql string) {
	t.Helper()
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", db))
	if sql != "" {
		x.psql(t, db, sql)
	}
}

// stamp is a backup file time stamp hours ago.
func stamp(hoursAgo int) (string, time.Time) {
	when := time.Now().Add(-time.Duration(hoursAgo) * time.Hour).Truncate(time.Second)
	return when.UTC().Format("20060102T150405"), when
}

// tarOf makes, with GNU tar, a tar.gz of dir parent/base at out, dated when.
func tarOf(t *testing.T, parent, base, out string, when time.Time, extra ...string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(out), 0o750))
	args := append([]string{"-C", parent, "-czf", out}, extra...)
	args = append(args, base)
	sh(t, "tar", args...)
	must(t, os.Chtimes(out, when, when))
}

// tree writes a small data tree at dir with content tag.
func tree(t *testing.T, dir, tag string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o750))
	must(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a "+tag+"\n"), 0o640))
	must(t, os.WriteFile(filepath.Join(dir, "sub", "b.txt"), []byte("b "+tag+"\n"), 0o600))
}

func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// digest describes every entry under dir: kind, mode, size, content hash,
// link target.
func digest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return nil
			}
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		s := fmt.Sprintf("%v %d", fi.Mode(), fi.Size())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			s += " -> " + l
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			s += " " + hex.EncodeToString(h[:8])
		}
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var must = fleettest.Must

func recoveryOf(res map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	list, _ := res["recovery"].([]any)
	for _, c := range list {
		if m, ok := c.(map[string]any); ok {
			if n, ok := m["component"].(string); ok {
				out[n] = m
			}
		}
	}
	return out
}

// backupUsed is the path of the backup a component was restored from.
func backupUsed(res map[string]any, component string) string {
	c := recoveryOf(res)[component]
	if c == nil {
		return ""
	}
	b, _ := c["backup"].(map[string]any)
	p, _ := b["path"].(string)
	return p
}

func status(res map[string]any, component string) string {
	c := recoveryOf(res)[component]
	if c == nil {
		return ""
	}
	s, _ := c["status"].(string)
	return s
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// tEntry is one entry of a crafted tar.
type tEntry struct {
	name, link string
	typ        byte
	body       string
	mode       int64
}

// craftTarGz writes a tar of entries (Go's archive/tar, for names no tar
// tool writes) compressed by the real gzip, at out, dated when.
func craftTarGz(t *testing.T, out string, when time.Time, entries ...tEntry) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(out), 0o750))
	raw := out + ".tar"
	f, err := os.Create(raw)
	must(t, err)
	tw := tar.NewWriter(f)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, ModTime: when, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
			if e.typ == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		must(t, tw.WriteHeader(h))
		if e.typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			must(t, err)
		}
	}
	must(t, tw.Close())
	must(t, f.Close())
	sh(t, "gzip", "-n", "-f", raw) // raw.gz
	must(t, os.Rename(raw+".gz", out))
	must(t, os.Chtimes(out, when, when))
}

// sidecar writes out.sha256 in sha256sum format, for the file's content.
func sidecar(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	must(t, err)
	h := sha256.Sum256(b)
	fi, err := os.Stat(file)
	must(t, err)
	must(t, os.WriteFile(file+".sha256", []byte(hex.EncodeToString(h[:])+"  "+filepath.Base(file)+"\n"), 0o644))
	must(t, os.Chtimes(file+".sha256", fi.ModTime(), fi.ModTime()))
}
