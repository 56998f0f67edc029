package sqlitedb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"strings"
)

// Digest is a logical digest of the database at path: its schema (every
// entry of sqlite_schema, in order of type and name) and every row of
// every table in key order (rowid, or primary key for a WITHOUT ROWID
// table), each value with its storage class. It reads the database as
// SQLite sees it, with what its -wal holds, opened read-only; it first
// runs PRAGMA integrity_check (a *CorruptError when that fails). Two
// databases with the same content have the same digest whatever their
// page layout, so the digest of an archived copy (made by Copy) equals
// that of the quarantined database it was copied from, while a changed
// row, table or index definition changes it.
func Digest(ctx context.Context, path string) (string, error) {
	if _, err := readHeader(path, false); err != nil {
		return "", err
	}
	db, err := open(path, "mode=ro&_busy_timeout=10000")
	if err != nil {
		return "", err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	// One read transaction: the schema and the rows of one commit.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return "", fmt.Errorf("digest of %s: %w", path, err)
	}
	defer tx.Rollback()
	if err := integrity(ctx, tx, path); err != nil {
		return "", err
	}
	h := sha256.New()
	rows, err := tx.QueryContext(ctx, "SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_schema ORDER BY type, name")
	if err != nil {
		return "", fmt.Errorf("digest of %s: %w", path, err)
	}
	var tables []string
	for rows.Next() {
		var typ, name, tbl, text string
		if err := rows.Scan(&typ, &name, &tbl, &text); err != nil {
			rows.Close()
			return "", fmt.Errorf("digest of %s: %w", path, err)
		}
		for _, s := range []string{typ, name, tbl, text} {
			writeBytes(h, []byte(s))
		}
		if typ == "table" && !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(text)), "CREATE VIRTUAL TABLE") {
			tables = append(tables, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("digest of %s: %w", path, err)
	}
	for _, t := range tables {
		if err := digestTable(ctx, tx, h, t); err != nil {
			return "", fmt.Errorf("digest of %s, table %q: %w", path, t, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// digestTable hashes the rows of table t in the order of its b-tree (NOT
// INDEXED: never an index's order), each column as its storage class and
// its value: the bytes of a text or blob, the decimal of an integer, the
// bits of a real.
func digestTable(ctx context.Context, tx *sql.Tx, h hash.Hash, t string) error {
	cols, err := columns(ctx, tx, t)
	if err != nil {
		return err
	}
	writeBytes(h, []byte("table:"+t))
	if len(cols) == 0 {
		return nil
	}
	var sel []string
	for _, c := range cols {
		q := quoteIdent(c)
		sel = append(sel, "typeof("+q+")",
			"CASE typeof("+q+") WHEN 'real' THEN NULL ELSE CAST("+q+" AS BLOB) END",
			"CASE typeof("+q+") WHEN 'real' THEN "+q+" END")
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+quoteIdent(t)+" NOT INDEXED")
	if err != nil {
		return err
	}
	defer rows.Close()
	vals := make([]any, 3*len(cols))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n uint64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		n++
		for i := 0; i < len(vals); i += 3 {
			typ, _ := vals[i].(string)
			writeBytes(h, []byte(typ))
			switch v := vals[i+1].(type) {
			case []byte:
				writeBytes(h, v)
			case string:
				writeBytes(h, []byte(v))
			case nil:
				writeBytes(h, nil)
			default:
				writeBytes(h, fmt.Appendf(nil, "%v", v))
			}
			if f, ok := vals[i+2].(float64); ok {
				var b [8]byte
				binary.BigEndian.PutUint64(b[:], math.Float64bits(f))
				writeBytes(h, b[:])
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	writeBytes(h, fmt.Appendf(nil, "rows:%d", n))
	return nil
}

// columns lists the stored columns of table t (generated columns are
// derived from them).
func columns(ctx context.Context, tx *sql.Tx, t string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", t)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// writeBytes writes b to h with its length first, so that no two lists
// of values hash alike.
func writeBytes(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// DigestMismatchError is a database whose content is no longer what was
// archived.
type DigestMismatchError struct {
	Path      string
	Want, Got string
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("sqlite database %s changed since it was archived (digest %s, archived %s)", e.Path, e.Got, e.Want)
}

// Hint tells the operator what to do.
func (e *DigestMismatchError) Hint() string {
	return "nothing was moved back; restore from the archive's copy instead, or inspect the quarantined file by hand"
}

// CheckDigest compares the Digest of the database at path with want: nil
// when equal, a *DigestMismatchError when not.
func CheckDigest(ctx context.Context, path, want string) error {
	got, err := Digest(ctx, path)
	if err != nil {
		return err
	}
	if got != want {
		return &DigestMismatchError{Path: path, Want: want, Got: got}
	}
	return nil
}
