package fleettest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/fleetsafe/fleetsafe/internal/fleetgen"
)

// Tree records every entry under root: type, mode and owner, content hash
// and mtime for files, target and mtime for links, mtime for directories.
func Tree(tb testing.TB, root string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		desc := fmt.Sprintf("%v", fi.Mode())
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			desc += fmt.Sprintf(" %d:%d", st.Uid, st.Gid)
		}
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			desc += " " + hex.EncodeToString(sum[:]) + " " + fi.ModTime().UTC().String()
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target + " " + fi.ModTime().UTC().String()
		default:
			desc += " " + fi.ModTime().UTC().String()
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		tb.Fatalf("snapshot %s: %v", root, err)
	}
	return out
}

// Snapshot is an instance's trees and database rows, for byte-for-byte
// comparisons before and after an operation.
type Snapshot struct {
	Trees map[string]map[string]string
	Rows  []string
}

// Snapshot captures the dir components and database rows of an instance.
func (f *Fleet) Snapshot(tb testing.TB, name string) Snapshot {
	tb.Helper()
	s := Snapshot{Trees: map[string]map[string]string{}}
	for _, c := range f.Layout.Components {
		if c.Type == "dir" {
			s.Trees[c.Name] = Tree(tb, f.Path(c.Name, name))
		}
	}
	if f.DB {
		rows, err := f.rows(context.Background(), name)
		if err != nil {
			tb.Fatal(err)
		}
		s.Rows = rows
	}
	return s
}

// rows reads the content rows of an instance's database on one session,
// and returns once the server has ended that session: its backend
// outlives the client's close by a moment (seconds on a loaded machine),
// and a soft delete started next would otherwise rightly find a session
// open on the database.
func (f *Fleet) rows(ctx context.Context, name string) ([]string, error) {
	db, err := f.PG.Open(ctx, f.Database(name))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var pid int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		conn.Close()
		return nil, err
	}
	out, err := func() ([]string, error) {
		defer conn.Close()
		rows, err := conn.QueryContext(ctx, "SELECT id::text || label || encode(body, 'hex') FROM public.content ORDER BY id")
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var r string
			if err := rows.Scan(&r); err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, rows.Err()
	}()
	db.Close()
	if werr := fleetgen.WaitBackendGone(ctx, f.PG, pid); err == nil {
		err = werr
	}
	return out, err
}

// Unzstd decompresses zstd data for tests that grep archives.
func Unzstd(tb testing.TB, data []byte) string {
	tb.Helper()
	d, err := zstd.NewReader(nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	out, err := d.DecodeAll(data, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return string(out)
}
