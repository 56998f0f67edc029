package model

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// treeDigest is a digest of every entry under root: relative path, type,
// permission bits, owner, content hash and mtime for files, target and
// mtime for links, mtime for directories. Two trees with one digest are
// identical byte for byte, metadata included.
func treeDigest(root string) (string, error) {
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line, err := entryLine(p)
		if err != nil {
			return err
		}
		lines = append(lines, rel+"\t"+line)
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:]), nil
}

// entryLine describes one entry without following it.
func entryLine(p string) (string, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	desc := fi.Mode().String()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		desc += fmt.Sprintf(" %d:%d", st.Uid, st.Gid)
	}
	switch {
	case fi.Mode().IsRegular():
		data, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(data)
		desc += " " + hex.EncodeToString(sum[:])
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		desc += " -> " + target
	}
	return desc + " " + fi.ModTime().UTC().Format("2006-01-02T15:04:05.000000000"), nil
}

// pathDigest is the digest of a dir or file component, "" when absent.
func pathDigest(p string) (string, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		return treeDigest(p)
	}
	line, err := entryLine(p)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(line))
	return hex.EncodeToString(sum[:]), nil
}

// databases lists the server's databases and whether each accepts
// connections.
func databases(ctx context.Context, admin *sql.DB) (map[string]bool, error) {
	rows, err := admin.QueryContext(ctx, `SELECT datname, datallowconn FROM pg_database`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		var allow bool
		if err := rows.Scan(&n, &allow); err != nil {
			return nil, err
		}
		out[n] = allow
	}
	return out, rows.Err()
}

// dbDigest is a digest of every row of every table of the public schema
// of a database, in a stable order; its session is gone when it returns.
func dbDigest(ctx context.Context, pg pgdump.Conn, name string) (string, error) {
	var digest string
	err := withSession(ctx, pg, name, func(db *sql.Conn) error {
		rows, err := db.QueryContext(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)
		if err != nil {
			return err
		}
		var tables []string
		for rows.Next() {
			var tn string
			if err := rows.Scan(&tn); err != nil {
				rows.Close()
				return err
			}
			tables = append(tables, tn)
		}
		rows.Close()
		h := sha256.New()
		for _, tn := range tables {
			var agg sql.NullString
			q := fmt.Sprintf(`SELECT string_agg(t::text, E'\n' ORDER BY t::text) FROM public.%s t`, pgdump.QuoteIdent(tn))
			if err := db.QueryRowContext(ctx, q).Scan(&agg); err != nil {
				return fmt.Errorf("digest %s.%s: %w", name, tn, err)
			}
			fmt.Fprintf(h, "table %s\n%s\n", tn, agg.String)
		}
		digest = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	return digest, err
}
