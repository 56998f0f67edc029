package mariadb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// ScratchPrefix starts the name of every scratch database (and of its
// user) of a test restore; it is one of ReservedPrefixes.
const ScratchPrefix = "fleetsafe_verify_"

// testHookScratch, set by tests only, learns each scratch name created.
var testHookScratch func(name string)

// ScratchRestore loads a mariadb-dump (r, read from file) into a new
// scratch database and returns the row count of each of its tables; the
// scratch database and its user are dropped whatever happens.
//
// What the dump may reach is bounded three times: GuardDump refuses, with
// the file's line, statements and client commands a dump of one database
// never holds; the client runs with --sandbox (no shell or file commands)
// and --local-infile=0; and it logs in as a user made for this restore,
// with privileges on the scratch database only (no FILE, no SUPER, no SET
// USER), so that whatever slips past the guard fails on the server.
//
// The returned Scratch names the scratch database (already dropped) and
// holds the counts; it is non-nil whenever the database was created, on
// failure too.
func ScratchRestore(ctx context.Context, c Conn, file string, r io.Reader) (*Scratch, error) {
	admin, err := c.Open(ctx, "")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := ScratchPrefix + hex.EncodeToString(b)
	pw := make([]byte, 18)
	_, _ = rand.Read(pw)
	password := hex.EncodeToString(pw)
	account := "'" + name + "'@'localhost'" // hex digits only: no quoting issue
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+QuoteIdent(name)+" CHARACTER SET utf8mb4"); err != nil {
		return nil, fmt.Errorf("create scratch database: %w", err)
	}
	if testHookScratch != nil {
		testHookScratch(name)
	}
	sc := &Scratch{Database: name}
	defer func() {
		// Dropped even when ctx is cancelled or the restore failed.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(dctx, "DROP USER IF EXISTS "+account)
		_, _ = admin.ExecContext(dctx, "DROP DATABASE IF EXISTS "+QuoteIdent(name))
	}()
	if _, err := admin.ExecContext(ctx, "CREATE USER "+account+" IDENTIFIED BY '"+password+"'"); err != nil {
		return sc, fmt.Errorf("create scratch user: %w", err)
	}
	if _, err := admin.ExecContext(ctx, "GRANT ALL PRIVILEGES ON "+QuoteIdent(name)+".* TO "+account); err != nil {
		return sc, fmt.Errorf("grant the scratch user its database: %w", err)
	}
	// Triggers and views naming the dumped database by name would reach
	// it (and be refused the scratch user): they name the scratch
	// database instead.
	guarded, refused := GuardDump(file, requalifyDump(r, "", name))
	lerr := Load(ctx, Conn{Socket: c.Socket, User: name, Password: password}, name, guarded)
	// Drain what the client left unread, so that the guard finishes.
	_, _ = io.Copy(io.Discard, guarded)
	if err := refused(); err != nil {
		return sc, err
	}
	if lerr != nil {
		return sc, lerr
	}
	sc.Counts, err = TableCounts(ctx, admin, name)
	return sc, err
}

// Scratch is a scratch restore: the database it used and the row count
// of each table restored.
type Scratch struct {
	Database string
	Counts   map[string]int64
}

// TableCounts counts the rows of every base table of database name.
func TableCounts(ctx context.Context, db *sql.DB, name string) (map[string]int64, error) {
	tables, err := Tables(ctx, db, name)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, t := range tables {
		if t.Type != "BASE TABLE" && t.Type != "SYSTEM VERSIONED" {
			continue
		}
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+QuoteIdent(name)+"."+QuoteIdent(t.Name)).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %q.%q: %w", name, t.Name, err)
		}
		out[t.Name] = n
	}
	return out, nil
}
