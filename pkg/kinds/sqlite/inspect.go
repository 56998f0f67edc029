package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Users names the processes that hold the database or one of its
// companions open (from /proc/<pid>/fd: pid and command), this process
// excepted.
func Users(db string) ([]string, error) {
	want := map[[2]uint64]bool{}
	for _, p := range append([]string{db}, companions(db)...) {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			want[[2]uint64{st.Dev, st.Ino}] = true
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var out []string
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			fi, err := os.Stat(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err != nil {
				continue
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok || !want[[2]uint64{st.Dev, st.Ino}] {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
			out = append(out, fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(string(comm))))
			break
		}
	}
	sort.Strings(out)
	return out, nil
}

func companions(db string) []string {
	out := make([]string, len(Companions))
	for i, c := range Companions {
		out[i] = db + c
	}
	return out
}

// state is the size and modification time of the database and of its
// -wal and -journal (the -shm changes on every read).
type state map[string]string

func fingerprint(db string) (state, error) {
	out := state{}
	for _, p := range []string{db, db + "-wal", db + "-journal"} {
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out[p] = "absent"
		case err != nil:
			return nil, err
		default:
			out[p] = fmt.Sprintf("%d bytes, modified %s", fi.Size(), fi.ModTime().UTC().Format(time.RFC3339Nano))
		}
	}
	return out, nil
}

func (s state) changes(now state, db string) []string {
	var out []string
	for _, p := range []string{db, db + "-wal", db + "-journal"} {
		if s[p] != now[p] {
			out = append(out, fmt.Sprintf("%s changed after the SQLite database was copied (was %s, now %s)", p, s[p], now[p]))
		}
	}
	return out
}

// openImmutable opens a self-contained database file read-only, as
// immutable: nothing is created or changed beside it.
func openImmutable(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "file", Path: abs, OmitHost: true}
	db, err := sql.Open("sqlite", u.String()+"?mode=ro&immutable=1")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func tableCount(path string) (int, error) {
	db, err := openImmutable(path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").Scan(&n)
	return n, err
}

// Digest is a digest of a self-contained database file's content: every
// schema object's SQL and every row of every table, in rowid (or primary
// key) order. Two files with the same digest hold the same database,
// whatever their page layout.
func Digest(ctx context.Context, path string) (string, error) {
	db, err := openImmutable(path)
	if err != nil {
		return "", err
	}
	defer db.Close()
	h := sha256.New()
	rows, err := db.QueryContext(ctx, "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name")
	if err != nil {
		return "", fmt.Errorf("read schema of %s: %w", path, err)
	}
	var tables []string
	for rows.Next() {
		var typ, name, tbl, text string
		if err := rows.Scan(&typ, &name, &tbl, &text); err != nil {
			rows.Close()
			return "", err
		}
		fmt.Fprintf(h, "%q %q %q %q\n", typ, name, tbl, text)
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	for _, t := range tables {
		if err := digestTable(ctx, db, t, h); err != nil {
			return "", fmt.Errorf("read table %s of %s: %w", t, path, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func digestTable(ctx context.Context, db *sql.DB, table string, h interface{ Write([]byte) (int, error) }) error {
	q := quoteIdent(table)
	// Every column, in a stable order: by rowid when the table has one,
	// else by every column.
	order := "rowid"
	var withoutRowid int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_list WHERE name = ? AND wr = 1", table).Scan(&withoutRowid); err == nil && withoutRowid > 0 {
		order = "1"
		cols, err := db.QueryContext(ctx, "SELECT count(*) FROM pragma_table_info(?)", table)
		if err == nil {
			var n int
			if cols.Next() {
				_ = cols.Scan(&n)
			}
			cols.Close()
			parts := make([]string, n)
			for i := range parts {
				parts[i] = strconv.Itoa(i + 1)
			}
			if n > 0 {
				order = strings.Join(parts, ", ")
			}
		}
	}
	rows, err := db.QueryContext(ctx, "SELECT * FROM "+q+" ORDER BY "+order)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	fmt.Fprintf(h, "table %q %q\n", table, cols)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for _, v := range vals {
			fmt.Fprintf(h, "%T:%q\x00", v, fmt.Sprint(v))
		}
		h.Write([]byte{'\n'})
	}
	return rows.Err()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// CompareQuarantined checks the quarantined database against the archived
// copy: a consistent copy of the quarantine (with its -wal) is made in a
// temporary directory, and both are compared by Digest. It returns why
// the quarantined copy cannot be trusted, or "".
func (Kind) CompareQuarantined(ctx context.Context, _ kind.Env, m kind.Move, dump string) (string, error) {
	if users, err := Users(m.To); err != nil {
		return "", err
	} else if len(users) > 0 {
		return fmt.Sprintf("it is open in a process: %s", strings.Join(users, "; ")), nil
	}
	want, err := Digest(ctx, dump)
	if err != nil {
		return fmt.Sprintf("its archived copy cannot be read to compare it (%v)", err), nil
	}
	work, err := os.MkdirTemp("", "fleetsafe-sqlite-compare-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	cp := filepath.Join(work, "quarantined.sqlite")
	if _, err := sqlitedb.Copy(ctx, m.To, cp); err != nil {
		return fmt.Sprintf("it cannot be read to compare it (%v)", err), nil
	}
	got, err := Digest(ctx, cp)
	if err != nil {
		return fmt.Sprintf("its copy cannot be read to compare it (%v)", err), nil
	}
	if got != want {
		return "its schema or rows differ from the verified copy in its archive", nil
	}
	return "", nil
}
