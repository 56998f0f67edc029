package postgresql

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// The content of a backup or archive (a plain dump's SQL, a custom dump's
// definitions, and every function its CHECK constraints, defaults or
// index expressions call while rows are loaded) is hostile input. It is
// never run by the module's own role, which is a superuser on most hosts:
// a superuser session reaches every database, every role and the server's
// files, and a blocklist cannot follow dynamic SQL. Each restore instead
// creates a temporary role:
//
//   - LOGIN, NOSUPERUSER, NOCREATEDB, NOCREATEROLE, NOREPLICATION,
//     NOBYPASSRLS, a member of no role (INHERIT only so that, as the
//     staging database's owner, it holds pg_database_owner's rights on
//     the public schema), named fsrestore_role_<random>,
//     with a random password that exists only in this process (the server
//     receives a SCRAM verifier, never the password, so no statement log
//     holds it; it is never in an error or a result);
//   - it owns the staging database while the content runs, and logs in
//     with its own session (pg_restore, psql and the database-level
//     entries all run as it): the session user itself is unprivileged, so
//     RESET ROLE, SET ROLE and SET SESSION AUTHORIZATION give nothing back;
//   - it logs in with a password over TCP (127.0.0.1, then ::1, then the
//     socket), which Debian's default pg_hba allows (scram-sha-256 on
//     127.0.0.1); a server that allows none refuses the restore, naming
//     what to allow, rather than falling back to the superuser;
//   - it is dropped by the run that made it, whatever happens. A run killed
//     before that leaves it; the next restore drops every such role whose
//     run is proven gone: the role carries restoreRoleComment, and its run
//     held a session-level advisory lock derived from its name for its
//     whole life, which the server releases when the run's connection dies.
//     A role whose lock is still held belongs to a live run and is left.
const (
	restoreRolePrefix  = "fsrestore_role_"
	restoreRoleComment = "fleetsafe temporary restore role: dropped by the run that made it, or by the next restore once that run is gone"
)

// advisoryClass is the first key of the two-key advisory locks of
// restore roles ("fsr\x00").
const advisoryClass = 0x66737200

// restoreRole is the temporary role of one restore.
type restoreRole struct {
	name     string
	password string
	admin    *sql.DB
	lock     *sql.Conn // holds the role's advisory lock; closing releases it
}

// roleLockKey is the second advisory-lock key of a role.
func roleLockKey(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int32(h.Sum32())
}

// RestoreRolePrefixFor is how the temporary restore roles of restores
// into database begin: the common prefix and a short hash of the
// database's name (the instance's database, or "scratch" for the scratch
// restores of backup verification), so that whoever looks for the roles
// of one database's restores (a test, an operator) finds them among
// others on a shared server.
func RestoreRolePrefixFor(database string) string {
	sum := sha256.Sum256([]byte(database))
	return restoreRolePrefix + hex.EncodeToString(sum[:4]) + "_"
}

// newRestoreRole removes the roles of gone runs, then creates this run's
// role and takes its lock. The caller must call drop.
func newRestoreRole(ctx context.Context, pg pgdump.Conn, tag string, notes func(string)) (*restoreRole, error) {
	admin, err := pg.Open(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	if err := dropGoneRestoreRoles(ctx, pg, admin); err != nil {
		notes(fmt.Sprintf("a temporary restore role left by a killed run could not be removed (%v); the next restore tries again", err))
	}
	raw := make([]byte, 8)
	pw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		admin.Close()
		return nil, err
	}
	if _, err := rand.Read(pw); err != nil {
		admin.Close()
		return nil, err
	}
	r := &restoreRole{name: RestoreRolePrefixFor(tag) + hex.EncodeToString(raw), password: base64.RawURLEncoding.EncodeToString(pw), admin: admin}
	if r.lock, err = admin.Conn(ctx); err != nil {
		admin.Close()
		return nil, fmt.Errorf("restore role: %w", err)
	}
	var got bool
	if err := r.lock.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1, $2)", advisoryClass, roleLockKey(r.name)).Scan(&got); err != nil || !got {
		r.lock.Close()
		admin.Close()
		return nil, fmt.Errorf("lock the temporary restore role %s: %v (lock taken: %v)", r.name, err, got)
	}
	verifier, err := scramVerifier(r.password)
	if err != nil {
		r.close()
		return nil, err
	}
	q := "CREATE ROLE " + pgdump.QuoteIdent(r.name) + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 16" +
		" PASSWORD " + pqLiteral(verifier) + " VALID UNTIL " + pqLiteral(time.Now().Add(48*time.Hour).UTC().Format(time.RFC3339))
	// The role and its comment in one transaction: a run killed in
	// between leaves no role that the next run could not prove its own.
	tx, err := r.lock.BeginTx(ctx, nil)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("create the temporary restore role %s: %w", r.name, err)
	}
	if _, err := tx.ExecContext(ctx, q); err != nil {
		_ = tx.Rollback()
		r.close()
		return nil, fmt.Errorf("create the temporary restore role %s: %w", r.name, err)
	}
	// A statement of the role whose client is gone (a killed module's
	// psql or pg_restore) is ended by the server within a second instead
	// of running to its end (PostgreSQL 14 and later).
	var version int
	if err := tx.QueryRowContext(ctx, "SELECT pg_catalog.current_setting('server_version_num')::int").Scan(&version); err != nil {
		_ = tx.Rollback()
		r.close()
		return nil, fmt.Errorf("create the temporary restore role %s: read the server version: %w", r.name, err)
	}
	if version >= 140000 {
		if _, err := tx.ExecContext(ctx, "ALTER ROLE "+pgdump.QuoteIdent(r.name)+" SET client_connection_check_interval = 1000"); err != nil {
			_ = tx.Rollback()
			r.close()
			return nil, fmt.Errorf("create the temporary restore role %s: %w", r.name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "COMMENT ON ROLE "+pgdump.QuoteIdent(r.name)+" IS "+pqLiteral(restoreRoleComment)); err != nil {
		_ = tx.Rollback()
		r.close()
		return nil, fmt.Errorf("comment the temporary restore role %s: %w", r.name, err)
	}
	if err := tx.Commit(); err != nil {
		r.close()
		return nil, fmt.Errorf("create the temporary restore role %s: %w", r.name, err)
	}
	return r, nil
}

func (r *restoreRole) close() {
	if r.lock != nil {
		r.lock.Close()
	}
	r.admin.Close()
}

// drop drops the role (and what it still owns in staging or scratch
// databases), then releases its lock. It runs on a context of its own, so
// that a cancelled restore still drops it.
func (r *restoreRole) drop(pg pgdump.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer r.close()
	return dropRestoreRole(ctx, pg, r.admin, r.name)
}

// login finds how the role can log in to database db: over TCP to
// 127.0.0.1 and ::1 with its password (Debian's default pg_hba), or to the
// configured host. It returns the connection settings of the role.
func (r *restoreRole) login(ctx context.Context, pg pgdump.Conn, db string) (pgdump.Conn, error) {
	res := pg.Resolved()
	hosts := []string{res.Host}
	if strings.HasPrefix(res.Host, "/") {
		hosts = []string{"127.0.0.1", "::1", res.Host}
	}
	var errs []string
	for _, h := range hosts {
		c := pgdump.Conn{Host: h, Port: res.Port, User: r.name, Password: r.password, SSLMode: res.SSLMode,
			// Its sessions run the dump's content, which sets its own
			// search_path; the role has no more rights than the content.
			TenantSearchPath: true}
		db, err := c.Open(ctx, db)
		if err == nil {
			db.Close()
			return c, nil
		}
		if ctx.Err() != nil {
			return pgdump.Conn{}, ctx.Err()
		}
		errs = append(errs, err.Error())
	}
	return pgdump.Conn{}, &LoginError{Role: r.name, Tried: errs}
}

// LoginError is a server that lets the temporary restore role log in by
// none of the ways tried.
type LoginError struct {
	Role  string
	Tried []string
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("the temporary restore role %s could not log in (%s); a backup's content is only ever run by such an unprivileged role, never by the module's own role, so nothing was restored",
		e.Role, strings.Join(e.Tried, "; "))
}

// Hint tells the operator what to allow.
func (e *LoginError) Hint() string {
	return "allow password logins (scram-sha-256 or md5) from 127.0.0.1 in pg_hba.conf, as Debian's default has it (host all all 127.0.0.1/32 scram-sha-256), with listen_addresses covering localhost"
}

// dropGoneRestoreRoles drops the restore roles of runs that are gone: the
// role carries restoreRoleComment and its advisory lock is free.
func dropGoneRestoreRoles(ctx context.Context, pg pgdump.Conn, admin *sql.DB) error {
	rows, err := admin.QueryContext(ctx, `SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) AND shobj_description(oid, 'pg_authid') = $2`,
		restoreRolePrefix, restoreRoleComment)
	if err != nil {
		return fmt.Errorf("list temporary restore roles: %w", err)
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
	if len(names) == 0 {
		return nil
	}
	conn, err := admin.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var errs []error
	for _, n := range names {
		var free bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1, $2)", advisoryClass, roleLockKey(n)).Scan(&free); err != nil {
			errs = append(errs, err)
			continue
		}
		if !free {
			continue // its run is alive
		}
		if err := dropRestoreRole(ctx, pg, admin, n); err != nil {
			errs = append(errs, err)
		}
		_, _ = conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1, $2)", advisoryClass, roleLockKey(n))
	}
	return errors.Join(errs...)
}

// dropRestoreRole ends the role's sessions, removes what it owns or was
// granted in staging and scratch databases (a database of another name
// where it holds anything is never touched: the drop fails, naming it),
// and drops it.
func dropRestoreRole(ctx context.Context, pg pgdump.Conn, admin *sql.DB, name string) error {
	if _, err := admin.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name); err != nil {
		return fmt.Errorf("end the sessions of the temporary restore role %s: %w", name, err)
	}
	rows, err := admin.QueryContext(ctx, `SELECT d.datname, d.datdba = r.oid FROM pg_database d, pg_roles r WHERE r.rolname = $1
		AND (d.datdba = r.oid OR EXISTS (SELECT 1 FROM pg_shdepend s WHERE s.dbid = d.oid AND s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid))`, name)
	if err != nil {
		return fmt.Errorf("list what the temporary restore role %s holds: %w", name, err)
	}
	type held struct {
		db    string
		owner bool
	}
	var dbs []held
	for rows.Next() {
		var h held
		if err := rows.Scan(&h.db, &h.owner); err != nil {
			rows.Close()
			return err
		}
		dbs = append(dbs, h)
	}
	rows.Close()
	for _, h := range dbs {
		if !strings.HasPrefix(h.db, StagingPrefix) && !strings.HasPrefix(h.db, ScratchPrefix) {
			return fmt.Errorf("the temporary restore role %s holds objects or privileges in database %s, which is neither a staging nor a scratch database: it was left as it is (the role too); look at what it holds there, then DROP OWNED BY and DROP ROLE it by hand", name, h.db)
		}
		if h.owner {
			if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+pgdump.QuoteIdent(h.db)+" OWNER TO CURRENT_USER"); err != nil {
				return fmt.Errorf("take back database %s from the temporary restore role %s: %w", h.db, name, err)
			}
		}
		db, err := pg.Open(ctx, h.db)
		if err != nil {
			return fmt.Errorf("drop what the temporary restore role %s owns in %s: %w", name, h.db, err)
		}
		_, err = db.ExecContext(ctx, "DROP OWNED BY "+pgdump.QuoteIdent(name))
		db.Close()
		if err != nil {
			return fmt.Errorf("drop what the temporary restore role %s owns in %s: %w", name, h.db, err)
		}
	}
	if _, err := admin.ExecContext(ctx, "DROP ROLE IF EXISTS "+pgdump.QuoteIdent(name)); err != nil {
		return fmt.Errorf("drop the temporary restore role %s: %w", name, err)
	}
	return nil
}

// scramVerifier is the SCRAM-SHA-256 verifier PostgreSQL stores for a
// password (RFC 5802, RFC 7677), computed here so that the password
// itself never reaches the server.
func scramVerifier(password string) (string, error) {
	const iter = 4096
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, 32)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, s string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}

// pqLiteral quotes a string literal.
func pqLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
