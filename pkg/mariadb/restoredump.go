package mariadb

import (
	"context"
	"fmt"
	"io"
	"time"
)

// RestoreDump recreates database name from a mariadb-dump (an archive's
// or a backup's), as the connection's user (root: DEFINER clauses are
// kept): it creates name with charset and collation (refusing a name
// that exists), loads the dump with the mariadb client (--sandbox,
// --local-infile=0), and drops the database again if the load fails, so
// that a failed restore leaves nothing half-loaded under the instance's
// name. The dump is checked by VerifyDump as it is loaded: one that
// stops before its end (at a statement boundary, which the client alone
// would take for the end) fails the restore too.
func RestoreDump(ctx context.Context, c Conn, name, charset, collation string, r io.Reader) error {
	if err := checkInstanceName(name); err != nil {
		return err
	}
	return loadNew(ctx, c, name, charset, collation, r)
}

// StageDump loads a mariadb-dump (checked as RestoreDump does) into the
// new database staged (a reserved name, such as fsrestore_…), then parks
// it (Park) for PutInPlace into name. A failure drops staged again.
func StageDump(ctx context.Context, c Conn, staged, name string, r io.Reader) error {
	if err := checkOwnName(staged); err != nil {
		return err
	}
	if err := checkInstanceName(name); err != nil {
		return err
	}
	if err := loadNew(ctx, c, staged, "", "", requalifyDump(r, name, staged)); err != nil {
		return err
	}
	admin, err := c.Open(ctx, "")
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := Park(ctx, admin, staged, name); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, derr := admin.ExecContext(dctx, "DROP DATABASE IF EXISTS "+QuoteIdent(staged)); derr != nil {
			return &StateError{Step: "park the staged database", Err: err, State: fmt.Sprintf("database %q loaded; dropping it failed too (%v): drop it by hand", staged, derr)}
		}
		return &StateError{Step: "park the staged database", Err: err, State: fmt.Sprintf("nothing: database %q was dropped again", staged)}
	}
	return nil
}

// loadNew creates database name and loads the dump r into it, dropping
// it again when the load fails.
func loadNew(ctx context.Context, c Conn, name, charset, collation string, r io.Reader) error {
	admin, err := c.Open(ctx, "")
	if err != nil {
		return err
	}
	defer admin.Close()
	if ok, err := Exists(ctx, admin, name); err != nil {
		return err
	} else if ok {
		return &TakenError{Database: name}
	}
	if charset == "" {
		charset, collation = "utf8mb4", "utf8mb4_general_ci"
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+QuoteIdent(name)+" CHARACTER SET "+QuoteIdent(charset)+
		" COLLATE "+QuoteIdent(collation)); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	pr, pw := io.Pipe()
	verified := make(chan error, 1)
	go func() {
		_, err := VerifyDump(pr)
		pr.CloseWithError(err)
		// Whatever VerifyDump left unread keeps the load going.
		verified <- err
	}()
	lerr := Load(ctx, c, name, io.TeeReader(r, pw))
	pw.Close()
	if verr := <-verified; lerr == nil && verr != nil {
		lerr = fmt.Errorf("the dump is not complete: %w", verr)
	}
	if lerr != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(dctx, "DROP DATABASE "+QuoteIdent(name)); err != nil {
			return &StateError{Step: "load the dump", Err: lerr,
				State: fmt.Sprintf("database %q created and partly loaded; dropping it failed too (%v): drop it by hand", name, err)}
		}
		return &StateError{Step: "load the dump", Err: lerr, State: fmt.Sprintf("nothing: database %q was dropped again", name)}
	}
	return nil
}
