package attack5

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// TestSuperuserOwnedViewAndRuleRunWithItsRights attacks promise 1
// ("nothing the backup contains runs with more rights than the restored
// database's own content needs", "no role gains a privilege"). A pg_custom
// backup of acme names a superuser as the database's owner (as a forged
// dump can) and defines no function of its own, so the check that refuses
// "a superuser owner with functions" does not apply. It holds a view over
// pg_authid (readable only by superusers) granted to PUBLIC, and a table
// open to PUBLIC with a rule whose action writes pg_database. A view's
// and a rule's table accesses are checked against their owner, which the
// restore makes the superuser: after the restore, any tenant's role reads
// every role's password verifier through the view, and changes another
// database by inserting a row.
func TestSuperuserOwnedViewAndRuleRunWithItsRights(t *testing.T) {
	x := newFx(t, "pg_custom")
	su := superuser(t)
	db := x.db("acme")
	victim := x.db("victim")
	tenant := x.app + "_bob"
	x.psql(t, "postgres", "CREATE ROLE "+tenant+" NOLOGIN")
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", victim))
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %s", db, su))
	x.psql(t, db, fmt.Sprintf(`
CREATE VIEW public.v AS SELECT rolname, rolpassword FROM pg_catalog.pg_authid;
GRANT SELECT ON public.v TO PUBLIC;
CREATE TABLE public.t (i int);
GRANT INSERT ON public.t TO PUBLIC;
CREATE RULE r AS ON INSERT TO public.t DO ALSO
  UPDATE pg_catalog.pg_database SET datconnlimit = 7 WHERE datname = '%s';`, victim))
	x.dump(t, db, "acme", "custom")
	x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))

	res := x.restore(t, "acme")
	rec := recoveryOf(res, "database")
	if res["failed"] == true {
		t.Logf("restore refused (holds): %v", rec)
		return
	}
	t.Logf("restored: status=%v reason=%v notes=%v", rec["status"], rec["reason"], res["notes"])
	owners := x.psql(t, db, "SELECT string_agg(c.relname || ':' || pg_get_userbyid(c.relowner), ',') FROM pg_class c WHERE c.relname IN ('v','t')")
	t.Logf("owners after restore: %s", owners)
	if out, err := x.psqlErr(db, "SET ROLE "+tenant+"; SELECT count(*) FROM public.v WHERE rolpassword IS NOT NULL OR true"); err == nil {
		t.Errorf("the restore made a view over pg_authid belonging to a superuser; tenant role %s reads it (%s rows of role names and password verifiers)", tenant, out)
	}
	if _, err := x.psqlErr(db, "SET ROLE "+tenant+"; INSERT INTO public.t VALUES (1)"); err == nil {
		if got := x.psql(t, "postgres", fmt.Sprintf("SELECT datconnlimit FROM pg_database WHERE datname = '%s'", victim)); got == "7" {
			t.Errorf("the restore made a rule belonging to a superuser; tenant role %s changed database %s by inserting a row", tenant, victim)
		}
	}
}

// TestPlainDumpMetaCommandsStayInTheDatabase attacks promise 1 with psql
// meta-commands in a pg_plain backup: the restore role logs in with a
// password psql keeps, so `\connect` to another tenant's database would
// reuse it; `\!` runs a shell as the module's user; `\copy … to` writes a
// client file; `\o` redirects output to a file; `\i`/`\ir` read files.
// The victim database is one where PUBLIC may create in public (as every
// cluster upgraded from PostgreSQL 14 or older has it). Whatever the
// restore answers, the victim database has no new table and no file is
// written.
func TestPlainDumpMetaCommandsStayInTheDatabase(t *testing.T) {
	cases := []struct{ name, line, open string }{
		{"connect at line start", `\connect {victim}` + "\nCREATE TABLE public.pwned (i int);\n", ""},
		{"c after a statement", `SELECT 1; \c {victim}` + "\nCREATE TABLE public.pwned (i int);\n", ""},
		{"connect inside a comment line", "-- x\n" + `   \c {victim}` + "\nCREATE TABLE public.pwned (i int);\n", ""},
		{"shell", `\! touch {file}` + "\n", ""},
		{"shell after a statement", `SELECT 1 \! touch {file}` + "\n", ""},
		{"copy to file", `\copy (SELECT 1) to '{file}'` + "\n", ""},
		{"output to file", `\o {file}` + "\nSELECT 1;\n", ""},
		{"identifier ending in $$ hides what follows", `SELECT 1 AS x$$;` + "\n" + `\! touch {file}` + "\n", ""},
		{"escape string hides what follows", `SELECT E'\'';` + "\n" + `\! touch {file}` + "\n", ""},
		{"unrestrict then a command on the same line", `\unrestrict {key} \! id -u > {file}` + "\n", ""},
		{"identifier ending in $$ in a dump without restrict", `SELECT 1 AS x$$;` + "\n" + `\! id -u > {file}` + "\n", ""},
		{"escape string in a dump without restrict", `SELECT E'\'';` + "\n" + `\! id -u > {file}` + "\n", ""},
		// psql before 15.19 (and 18.6, 17.11, 16.15, 14.24) expands
		// backquotes in \unrestrict's argument even in restricted mode
		{"unrestrict with a backquoted argument", "\\unrestrict `id -u > {file}`\n", ""},
		{"unrestrict with a backquoted argument after a statement", "SELECT 1 \\unrestrict `id -u > {file}`\n", ""},
		{"unrestrict with a backquoted argument inside a string", "SELECT '\\unrestrict `id -u > {file}`';\n", ""},
		{"setenv and gexec", `SELECT 'CREATE TABLE x (i int)' \gexec` + "\n" + `\o {file}` + "\nSELECT 1;\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Each case has its own app: databases, roles, files.
			t.Parallel()
			if c.open != "" {
				t.Skip("open: FINDINGS-5.md " + c.open)
			}
			x := newFx(t, "pg_plain")
			db := x.db("acme")
			victim := x.db("victim")
			file := t.TempDir() + "/pwned"
			x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", victim))
			x.psql(t, victim, "GRANT CREATE ON SCHEMA public TO PUBLIC")
			x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", db))
			x.psql(t, db, "CREATE TABLE public.data (i int); INSERT INTO public.data VALUES (1), (2);")
			p := x.dump(t, db, "acme", "plain")
			b, err := os.ReadFile(p)
			must(t, err)
			key := ""
			for _, l := range strings.Split(string(b), "\n") {
				if k, ok := strings.CutPrefix(l, `\restrict `); ok {
					key = strings.TrimSpace(k)
				}
			}
			if strings.Contains(c.line, "{key}") && key == "" {
				t.Skip("pg_dump writes no \\restrict here")
			}
			line := strings.NewReplacer("{victim}", victim, "{file}", file, "{key}", key).Replace(c.line)
			body := strings.Replace(string(b), "-- PostgreSQL database dump complete", line+"\n-- PostgreSQL database dump complete", 1)
			if strings.HasSuffix(c.name, "without restrict") {
				// as pg_dump before 15.14 writes it
				var kept []string
				for _, l := range strings.Split(body, "\n") {
					if !strings.HasPrefix(l, `\restrict `) && !strings.HasPrefix(l, `\unrestrict `) {
						kept = append(kept, l)
					}
				}
				body = strings.Join(kept, "\n")
			}
			fi, _ := os.Stat(p)
			must(t, os.WriteFile(p, []byte(body), 0o644))
			must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
			x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))

			res := x.restore(t, "acme")
			t.Logf("failed=%v status=%v refused=%v", res["failed"], recoveryOf(res, "database")["status"], recoveryOf(res, "database")["refused"])
			if got := x.psql(t, victim, "SELECT count(*) FROM pg_class WHERE relname IN ('pwned','x') AND relnamespace = 'public'::regnamespace"); got != "0" {
				t.Errorf("the plain dump's %q created a table in another database %s", c.name, victim)
			}
			if _, err := os.Stat(file); err == nil {
				b, _ := os.ReadFile(file)
				t.Errorf("the plain dump's %q wrote the file %s (content %q)", c.name, file, b)
			}
		})
	}
}

// TestRestoredDatabaseKeepsItsDefaultPrivileges attacks promise 2 ("the
// restored database is complete: same owner, objects, grants"): the
// application's role has default privileges in its database (ALTER
// DEFAULT PRIVILEGES FOR ROLE <owner> GRANT SELECT ON TABLES TO <reader>,
// as many applications set for a read-only role). A real dump of it
// (custom and plain) is restored: the restore must succeed, the default
// privileges must be the owner's again, and no restore role may be left.
func TestRestoredDatabaseKeepsItsDefaultPrivileges(t *testing.T) {
	for _, format := range []string{"custom", "plain"} {
		t.Run(format, func(t *testing.T) {
			x := newFx(t, "pg_"+format)
			db := x.db("acme")
			owner, reader := x.app+"_own", x.app+"_ro"
			x.psql(t, "postgres", "CREATE ROLE "+owner+" NOLOGIN")
			x.psql(t, "postgres", "CREATE ROLE "+reader+" NOLOGIN")
			x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %s", db, owner))
			x.psql(t, db, "SET ROLE "+owner+"; CREATE TABLE public.t (i int); INSERT INTO public.t VALUES (1); ALTER DEFAULT PRIVILEGES FOR ROLE "+owner+" IN SCHEMA public GRANT SELECT ON TABLES TO "+reader+"; CREATE TABLE public.u (i int);")
			want := x.psql(t, db, "SELECT pg_get_userbyid(defaclrole) || ':' || array_to_string(defaclacl, ',') FROM pg_default_acl")
			x.dump(t, db, "acme", format)
			x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))
			before := restoreRoles(t, x)

			res := x.restore(t, "acme")
			rec := recoveryOf(res, "database")
			if res["failed"] != false {
				t.Fatalf("a database with default privileges is not restored: %v %v", res["msg"], rec)
			}
			got := x.psql(t, db, "SELECT coalesce(string_agg(pg_get_userbyid(defaclrole) || ':' || array_to_string(defaclacl, ','), ';'), '') FROM pg_default_acl")
			if got != want {
				t.Errorf("default privileges after the restore: %q, want %q (notes %v)", got, want, res["notes"])
			}
			for r := range restoreRoles(t, x) {
				if !before[r] && strings.Contains(got, r) {
					t.Errorf("restore role %s left with default privileges", r)
				}
			}
		})
	}
}

// TestNoSecretInTheStatementLog attacks promise 3 ("no secret in results,
// errors, logs, or the server's statement log"): the module's role has
// log_statement=all (ALTER ROLE … SET, for the run) while the module makes
// and drops its temporary restore role and restores a custom dump. The server log written meanwhile must hold
// no password in clear (a PASSWORD clause whose text is not a SCRAM
// verifier, a password= connection parameter).
func TestNoSecretInTheStatementLog(t *testing.T) {
	const logFile = "/var/log/postgresql/postgresql-15-main.log"
	fi, err := os.Stat(logFile)
	if err != nil {
		t.Skipf("no server log to read: %v", err)
	}
	x := newFx(t, "pg_custom")
	db := x.db("acme")
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", db))
	x.psql(t, db, "CREATE TABLE public.t (i int); INSERT INTO public.t VALUES (1);")
	x.dump(t, db, "acme", "custom")
	x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))

	// For the module's role only (PGOPTIONS would reach the restore role's
	// sessions too, which may not set log_statement), for this run only.
	su := superuser(t)
	x.psql(t, "postgres", fmt.Sprintf("ALTER ROLE %q SET log_statement = 'all'", su))
	t.Cleanup(func() { _, _ = x.psqlErr("postgres", fmt.Sprintf("ALTER ROLE %q RESET log_statement", su)) })
	res := x.restore(t, "acme")
	x.psql(t, "postgres", fmt.Sprintf("ALTER ROLE %q RESET log_statement", su))
	if res["failed"] != false {
		t.Fatalf("restore failed: %v", res["msg"])
	}
	f, err := os.Open(logFile)
	must(t, err)
	defer f.Close()
	_, err = f.Seek(fi.Size(), 0)
	must(t, err)
	b, err := io.ReadAll(f)
	must(t, err)
	log := string(b)
	if !strings.Contains(log, db) {
		t.Fatalf("the server did not log the module's statements (PGOPTIONS ignored?): %d bytes logged", len(b))
	}
	password := regexp.MustCompile(`(?i)PASSWORD\s+'([^']*)'|password=(\S+)`)
	for _, m := range password.FindAllStringSubmatch(log, -1) {
		v := m[1] + m[2]
		if !strings.HasPrefix(v, "SCRAM-SHA-256$") && !strings.HasPrefix(v, "md5") {
			t.Errorf("the server log holds a password in clear: %q", m[0])
		}
	}
	if out := fmt.Sprint(res); strings.Contains(strings.ToLower(out), "password=") {
		t.Errorf("the result holds a password: %s", out)
	}
	t.Logf("%d log lines checked, %d PASSWORD clauses", strings.Count(log, "\n"), len(password.FindAllString(log, -1)))
}

// TestForgedOwnerIsAnotherTenant attacks promise 1 ("no role gains a
// privilege") and 2 ("same owner as the original"): acme's database
// belonged to acme's role, and every older backup says so; the newest
// backup in acme's directory is a real dump of a database of acme's name
// owned by bob's role (another tenant on the server; a forged backup).
// The restore must not give acme's database to bob's role.
func TestForgedOwnerIsAnotherTenant(t *testing.T) {
	for _, pinned := range []bool{true, false} {
		t.Run(fmt.Sprintf("owner_in_layout=%v", pinned), func(t *testing.T) {
			x := newFx(t, "pg_custom")
			db := x.db("acme")
			acme, bob := x.app+"_acme", x.app+"_bob"
			if pinned {
				// The defence: the layout names the role acme's database
				// belongs to ({name} expanded).
				b, err := os.ReadFile(x.layout)
				must(t, err)
				y := strings.Replace(string(b), "    database: "+x.app+"_{name}\n", "    database: "+x.app+"_{name}\n    owner: "+x.app+"_{name}\n", 1)
				must(t, os.WriteFile(x.layout, []byte(y), 0o644))
			}
			x.psql(t, "postgres", "CREATE ROLE "+acme+" NOLOGIN")
			x.psql(t, "postgres", "CREATE ROLE "+bob+" NOLOGIN")
			x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %s", db, acme))
			x.psql(t, db, "SET ROLE "+acme+"; CREATE TABLE public.t (i int); INSERT INTO public.t VALUES (1);")
			dumped := x.dump(t, db, "acme", "custom")
			when := time.Now().Add(-30 * time.Hour).Truncate(time.Second)
			old := filepath.Join(filepath.Dir(dumped), "db-"+when.UTC().Format("20060102T150405")+".dump")
			must(t, os.Rename(dumped, old))
			must(t, os.Chtimes(old, when, when))
			x.psql(t, "postgres", fmt.Sprintf("ALTER DATABASE %q OWNER TO %s", db, bob))
			x.psql(t, db, "REASSIGN OWNED BY "+acme+" TO "+bob)
			forged := x.dump(t, db, "acme", "custom")
			x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))

			res := x.restore(t, "acme")
			rec := recoveryOf(res, "database")
			got := x.psql(t, "postgres", fmt.Sprintf("SELECT coalesce(pg_get_userbyid(datdba), '') FROM pg_database WHERE datname = '%s'", db))
			notes := fmt.Sprint(res["notes"])
			if !pinned {
				// Today's behaviour, never silent: the note names the
				// owner taken from the dump and the key that pins it.
				if got == bob && !(strings.Contains(notes, bob) && strings.Contains(notes, "owner")) {
					t.Errorf("acme's database was given to %s with no note naming it: notes %v", bob, res["notes"])
				}
				return
			}
			if res["failed"] != false {
				t.Fatalf("not restored (the older good backup should be): %v %v", res["msg"], rec)
			}
			if got != acme {
				t.Errorf("acme's restored database belongs to %q, want %s (notes %v)", got, acme, res["notes"])
			}
			refused := fmt.Sprint(rec["refused"])
			if !strings.Contains(refused, forged) || !strings.Contains(refused, bob) || !strings.Contains(refused, acme) {
				t.Errorf("the forged backup %s was not refused naming both roles: refused %v", forged, refused)
			}
			if b, _ := rec["backup"].(map[string]any); b == nil || b["path"] != old {
				t.Errorf("restored from %v, want the older good backup %s", rec["backup"], old)
			}
			if n := x.psql(t, db, "SELECT count(*) FROM pg_class WHERE relname = 't' AND pg_get_userbyid(relowner) = '"+acme+"'"); n != "1" {
				t.Errorf("table t not owned by %s after the restore (count %s)", acme, n)
			}
		})
	}
}

// TestExoticContentComesBack attacks promise 2 ("objects and rows") with
// content an application may have and the restore role must be able to
// create and hand over: a large object, a publication, a row-level
// security policy, a sequence's position, a comment on the database.
func TestExoticContentComesBack(t *testing.T) {
	x := newFx(t, "pg_custom")
	db := x.db("acme")
	owner := x.app + "_own"
	x.psql(t, "postgres", "CREATE ROLE "+owner+" NOLOGIN")
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %s", db, owner))
	x.psql(t, db, fmt.Sprintf(`SET ROLE %s;
CREATE TABLE public.t (i int PRIMARY KEY, who text);
ALTER TABLE public.t ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON public.t USING (who = current_user);
CREATE SEQUENCE public.s; SELECT setval('public.s', 42);
CREATE PUBLICATION pub FOR TABLE public.t;
SELECT lo_from_bytea(424242, 'large object');
INSERT INTO public.t VALUES (1, 'x');
COMMENT ON DATABASE %q IS 'acme db';`, owner, db))
	probe := `SELECT (SELECT count(*) FROM pg_largeobject_metadata WHERE oid = 424242 AND pg_get_userbyid(lomowner) = '%[1]s') || ',' ||
 (SELECT coalesce(encode(lo_get(424242), 'escape'), '')) || ',' ||
 (SELECT count(*) FROM pg_publication WHERE pubname = 'pub' AND pg_get_userbyid(pubowner) = '%[1]s') || ',' ||
 (SELECT count(*) FROM pg_policy WHERE polname = 'p') || ',' ||
 (SELECT relrowsecurity FROM pg_class WHERE oid = 'public.t'::regclass) || ',' ||
 (SELECT last_value FROM public.s) || ',' ||
 (SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = current_database())`
	probe = fmt.Sprintf(probe, owner)
	want := x.psql(t, db, probe)
	x.dump(t, db, "acme", "custom")
	x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))

	res := x.restore(t, "acme")
	if res["failed"] != false {
		t.Fatalf("not restored: %v %v", res["msg"], recoveryOf(res, "database"))
	}
	if got := x.psql(t, db, probe); got != want {
		t.Errorf("restored content differs: got %q, want %q (notes %v)", got, want, res["notes"])
	}
}

// TestBackupVerifyRestoreTestRunsNoMetaCommand attacks promise 1 through
// backup_verify's scratch restore (restore_test) and its drill: a live instance's newest
// pg_plain backup hides `\!` behind an escape string the plain-dump guard
// reads differently from psql (a dump without \restrict, as pg_dump
// before 15.14 writes). Verifying backups must never run a shell.
func TestBackupVerifyRestoreTestRunsNoMetaCommand(t *testing.T) {
	x := newFx(t, "pg_plain")
	db := x.db("acme")
	file := t.TempDir() + "/pwned"
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", db))
	x.psql(t, db, "CREATE TABLE public.data (i int); INSERT INTO public.data VALUES (1), (2);")
	p := x.dump(t, db, "acme", "plain")
	b, err := os.ReadFile(p)
	must(t, err)
	var kept []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, `\restrict `) && !strings.HasPrefix(l, `\unrestrict `) {
			kept = append(kept, l)
		}
	}
	body := strings.Replace(strings.Join(kept, "\n"), "-- PostgreSQL database dump complete",
		`SELECT E'\'';`+"\n"+`\! id -u > `+file+"\n-- PostgreSQL database dump complete", 1)
	fi, _ := os.Stat(p)
	must(t, os.WriteFile(p, []byte(body), 0o644))
	must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))

	for _, mode := range []string{"restore_test", "drill"} {
		args := map[string]any{"layout_file": x.layout, "state_file": t.TempDir() + "/state.json", "fail_on": "never"}
		if mode == "drill" {
			args["drill"] = true
		} else {
			args["restore_test"] = 1
		}
		c := modules.Cmd(t, "backup_verify", args)
		c.Env = append(os.Environ(), x.pg.Env()...)
		res := fleettest.ModuleResult(t, c)
		delete(res, "invocation")
		t.Logf("backup_verify %s: failed=%v msg=%v", mode, res["failed"], res["msg"])
		if out, err := os.ReadFile(file); err == nil {
			t.Errorf("backup_verify's %s ran the backup's shell command (wrote %s: %q)", mode, file, out)
			must(t, os.Remove(file))
		}
	}
}

// TestKilledRestoreLeavesNoSession attacks promise 2 ("a SIGKILL at any
// instant converges on the next run; nothing of a killed run lingers on
// the server: roles, databases, connections"): the module is killed
// (SIGKILL, its own pid only) while psql runs a plain dump's slow
// statement as the restore role. Right after the kill, no session of the
// killed run may go on running the backup's content; the next run must
// restore the database and leave no staging database, no restore role of
// its own or of the killed run, and no session.
func TestKilledRestoreLeavesNoSession(t *testing.T) {
	x := newFx(t, "pg_plain")
	db := x.db("acme")
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", db))
	x.psql(t, db, "CREATE TABLE public.data (i int); INSERT INTO public.data VALUES (1), (2);")
	p := x.dump(t, db, "acme", "plain")
	b, err := os.ReadFile(p)
	must(t, err)
	body := strings.Replace(string(b), "-- PostgreSQL database dump complete",
		"SELECT pg_sleep(10);\nINSERT INTO public.data VALUES (3);\n-- PostgreSQL database dump complete", 1)
	fi, _ := os.Stat(p)
	must(t, os.WriteFile(p, []byte(body), 0o644))
	must(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
	x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))
	before := restoreRoles(t, x)

	c := modules.Cmd(t, "instance_restore", map[string]any{"name": "acme", "layout_file": x.layout, "source": "backup"})
	c.Env = append(os.Environ(), x.pg.Env()...)
	must(t, c.Start())
	sessions := fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'fsrestore%%%s%%'", x.app)
	deadline := time.Now().Add(20 * time.Second)
	for x.psql(t, "postgres", sessions+" AND query LIKE '%pg_sleep%'") == "0" {
		if time.Now().After(deadline) {
			_ = c.Process.Kill()
			_ = c.Wait()
			t.Fatal("the restore never reached the slow statement")
		}
		time.Sleep(50 * time.Millisecond)
	}
	kids, _ := exec.Command("pgrep", "-P", fmt.Sprint(c.Process.Pid)).Output()
	t.Logf("children before the kill: %q", kids)
	if len(strings.Fields(string(kids))) == 0 {
		t.Log("no child process of the module seen before the kill")
	}
	must(t, c.Process.Kill())
	_ = c.Wait()
	time.Sleep(500 * time.Millisecond)
	// A client (psql) of the killed run still alive would go on sending
	// the backup's next statements. Its session is ended by the server
	// once the client is gone (the restore role's
	// client_connection_check_interval), long before its slow statement
	// would end.
	for end := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		n := x.psql(t, "postgres", sessions)
		if n == "0" {
			break
		}
		if time.Now().After(end) {
			t.Errorf("%s session(s) of the killed run still on the staging database 3.5 s after the kill (its statement runs on)", n)
			break
		}
	}
	var orphans []string
	for _, pid := range strings.Fields(string(kids)) {
		if st, err := os.ReadFile("/proc/" + pid + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
			cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			orphans = append(orphans, fmt.Sprintf("%s (%q)", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
		}
	}

	res := x.restore(t, "acme")
	if res["failed"] != false {
		t.Fatalf("the run after the kill failed: %v %v", res["msg"], recoveryOf(res, "database"))
	}
	if got := x.psql(t, db, "SELECT count(*) FROM public.data"); got != "3" {
		t.Errorf("restored rows: %s, want 3", got)
	}
	if n := x.psql(t, "postgres", sessions); n != "0" {
		t.Errorf("%s session(s) left on staging databases after the next run", n)
	}
	if n := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_database WHERE datname LIKE 'fsrestore%%%s%%'", x.app)); n != "0" {
		t.Errorf("%s staging database(s) left after the next run", n)
	}
	for r := range restoreRoles(t, x) {
		if !before[r] {
			if n := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE usename = '%s'", r)); n != "0" {
				t.Errorf("restore role %s left with %s session(s)", r, n)
			}
		}
	}
	if len(orphans) > 0 {
		// FINDINGS-5.md #6 (closed by pkg/childproc).
		t.Errorf("child(ren) of the killed run still alive 0.5 s after the kill: %s", orphans)
	}
}

// TestDatabaseSearchPathDoesNotCaptureTheModule attacks promise 1 ("no
// role gains a privilege", "nothing the backup contains runs with more
// rights than the restored database's own content needs") with what any
// tenant may do in its own database, no forgery needed: acme's owner (an
// unprivileged role) sets `ALTER DATABASE acme SET search_path = public,
// pg_catalog` and defines in public an operator `=` on (oid, oid) and on
// (name, name)/(name, text) whose function, when its caller is a superuser,
// changes another database. A real dump of it is restored; every
// unqualified comparison that the module's (superuser) sessions run in
// the staging or restored database calls the tenant's function with the
// module's rights.
func TestDatabaseSearchPathDoesNotCaptureTheModule(t *testing.T) {
	x := newFx(t, "pg_custom")
	db := x.db("acme")
	victim := x.db("victim")
	owner := x.app + "_own"
	x.psql(t, "postgres", "CREATE ROLE "+owner+" NOLOGIN")
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", victim))
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %s", db, owner))
	body := fmt.Sprintf(`BEGIN
  BEGIN
    UPDATE pg_catalog.pg_database SET datconnlimit = 7 WHERE datname OPERATOR(pg_catalog.=) '%s';
  EXCEPTION WHEN others THEN NULL;
  END;
  RETURN a OPERATOR(pg_catalog.=) b;
END`, victim)
	x.psql(t, db, fmt.Sprintf(`SET ROLE %[1]s;
CREATE TABLE public.t (i int); INSERT INTO public.t VALUES (1);
CREATE FUNCTION public.eq_oid(a oid, b oid) RETURNS bool LANGUAGE plpgsql AS $f$%[2]s$f$;
CREATE FUNCTION public.eq_name(a name, b name) RETURNS bool LANGUAGE plpgsql AS $f$%[2]s$f$;
CREATE FUNCTION public.eq_name_text(a name, b text) RETURNS bool LANGUAGE plpgsql AS $f$%[2]s$f$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.eq_oid);
CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.eq_name);
CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = text, FUNCTION = public.eq_name_text);
ALTER DATABASE %[3]q SET search_path = public, pg_catalog;`, owner, body, db))
	x.dump(t, db, "acme", "custom")
	x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))

	res := x.restore(t, "acme")
	t.Logf("restore: failed=%v status=%v", res["failed"], recoveryOf(res, "database")["status"])
	if got := x.psql(t, "postgres", fmt.Sprintf("SELECT datconnlimit FROM pg_database WHERE datname = '%s'", victim)); got == "7" {
		t.Errorf("the tenant's operator ran as the module's superuser during the restore and changed database %s", victim)
	}
	if got := x.psql(t, db, "SHOW search_path"); got != "public, pg_catalog" {
		t.Fatalf("the database-level search_path did not come back (%q): the attack was not armed", got)
	}
	// backup_verify works in the live database and a scratch restore of it.
	c := modules.Cmd(t, "backup_verify", map[string]any{"layout_file": x.layout, "restore_test": 1,
		"state_file": t.TempDir() + "/state.json", "fail_on": "never"})
	c.Env = append(os.Environ(), x.pg.Env()...)
	vres := fleettest.ModuleResult(t, c)
	t.Logf("backup_verify: failed=%v msg=%v", vres["failed"], vres["msg"])
	if got := x.psql(t, "postgres", fmt.Sprintf("SELECT datconnlimit FROM pg_database WHERE datname = '%s'", victim)); got == "7" {
		t.Errorf("the tenant's operator ran as the module's superuser during backup_verify and changed database %s", victim)
	}
}

// TestSearchPathInSoftDeleteAndArchiveRestore is the attack of
// TestDatabaseSearchPathDoesNotCaptureTheModule on the archive path: the
// tenant's database (search_path = public, pg_catalog; its own `=`
// operators whose function, run by a superuser, changes another
// database) is soft deleted and restored from its archive. Neither run
// may execute the tenant's function with the module's rights.
func TestSearchPathInSoftDeleteAndArchiveRestore(t *testing.T) {
	x := newFx(t, "pg_custom")
	db := x.db("acme")
	victim := x.db("victim")
	owner := x.app + "_own"
	archive := t.TempDir()
	x.psql(t, "postgres", "CREATE ROLE "+owner+" NOLOGIN")
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", victim))
	x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %s", db, owner))
	body := fmt.Sprintf(`BEGIN
  BEGIN
    UPDATE pg_catalog.pg_database SET datconnlimit = 7 WHERE datname OPERATOR(pg_catalog.=) '%s';
  EXCEPTION WHEN others THEN NULL;
  END;
  RETURN a OPERATOR(pg_catalog.=) b;
END`, victim)
	x.psql(t, db, fmt.Sprintf(`SET ROLE %[1]s;
CREATE TABLE public.t (i int); INSERT INTO public.t VALUES (1);
CREATE FUNCTION public.eq_oid(a oid, b oid) RETURNS bool LANGUAGE plpgsql AS $f$%[2]s$f$;
CREATE FUNCTION public.eq_name(a name, b name) RETURNS bool LANGUAGE plpgsql AS $f$%[2]s$f$;
CREATE FUNCTION public.eq_name_text(a name, b text) RETURNS bool LANGUAGE plpgsql AS $f$%[2]s$f$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.eq_oid);
CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = name, FUNCTION = public.eq_name);
CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = text, FUNCTION = public.eq_name_text);
ALTER DATABASE %[3]q SET search_path = public, pg_catalog;`, owner, body, db))
	changed := func() bool {
		return x.psql(t, "postgres", fmt.Sprintf("SELECT datconnlimit FROM pg_database WHERE datname = '%s'", victim)) == "7"
	}
	run := func(module string, args map[string]any) map[string]any {
		c := modules.Cmd(t, module, args)
		c.Env = append(os.Environ(), x.pg.Env()...)
		res := fleettest.ModuleResult(t, c)
		delete(res, "invocation")
		return res
	}
	res := run("instance_soft_delete", map[string]any{"name": "acme", "layout_file": x.layout, "archive_dir": archive,
		"reason": "attack5", "requested_by": "attack5", "retention_days": 1})
	t.Logf("soft delete: failed=%v msg=%v", res["failed"], res["msg"])
	if changed() {
		t.Errorf("the tenant's operator ran as the module's superuser during the soft delete and changed database %s", victim)
	}
	if res["failed"] != false {
		t.Fatalf("soft delete failed: %v", res["msg"])
	}
	x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE IF EXISTS %q", db))
	var quarantined string
	quarantined = x.psql(t, "postgres", fmt.Sprintf("SELECT coalesce(string_agg(datname, ','), '') FROM pg_database WHERE datname LIKE '%%%s_acme%%'", x.app))
	for _, q := range strings.Split(quarantined, ",") {
		if q != "" {
			x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", q))
		}
	}
	res = run("instance_restore", map[string]any{"name": "acme", "layout_file": x.layout, "archive_dir": archive, "source": "archive"})
	t.Logf("restore from archive: failed=%v msg=%v", res["failed"], res["msg"])
	if changed() {
		t.Errorf("the tenant's operator ran as the module's superuser during the archive restore and changed database %s", victim)
	}
	if got := x.psql(t, db, "SELECT count(*) FROM public.t"); got != "1" {
		t.Errorf("rows restored from the archive: %s, want 1", got)
	}
	if got := x.psql(t, db, "SHOW search_path"); got != "public, pg_catalog" {
		t.Errorf("the database-level search_path did not come back from the archive (%q): the attack was not armed", got)
	}
}

// TestLayoutOwnerRefusals attacks the layout's owner key: a pg_plain
// backup whose objects belong to another tenant's role is refused for
// the older good one; a layout owner that is a superuser or does not
// exist restores nothing (no older backup is tried: each would fail
// alike), naming it.
func TestLayoutOwnerRefusals(t *testing.T) {
	setOwner := func(t *testing.T, x *fx, owner string) {
		b, err := os.ReadFile(x.layout)
		must(t, err)
		y := strings.Replace(string(b), "    database: "+x.app+"_{name}\n", "    database: "+x.app+"_{name}\n    owner: "+owner+"\n", 1)
		must(t, os.WriteFile(x.layout, []byte(y), 0o644))
	}
	t.Run("plain dump of another owner", func(t *testing.T) {
		x := newFx(t, "pg_plain")
		setOwner(t, x, x.app+"_{name}")
		db := x.db("acme")
		acme, bob := x.app+"_acme", x.app+"_bob"
		x.psql(t, "postgres", "CREATE ROLE "+acme+" NOLOGIN; CREATE ROLE "+bob+" NOLOGIN")
		x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q OWNER %s", db, acme))
		x.psql(t, db, "SET ROLE "+acme+"; CREATE TABLE public.t (i int); INSERT INTO public.t VALUES (1);")
		dumped := x.dump(t, db, "acme", "plain")
		when := time.Now().Add(-30 * time.Hour).Truncate(time.Second)
		old := filepath.Join(filepath.Dir(dumped), "db-"+when.UTC().Format("20060102T150405")+".sql")
		must(t, os.Rename(dumped, old))
		must(t, os.Chtimes(old, when, when))
		x.psql(t, db, "REASSIGN OWNED BY "+acme+" TO "+bob)
		forged := x.dump(t, db, "acme", "plain")
		x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))

		res := x.restore(t, "acme")
		rec := recoveryOf(res, "database")
		if res["failed"] != false {
			t.Fatalf("not restored: %v %v", res["msg"], rec)
		}
		if got := x.psql(t, db, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 't'"); got != acme {
			t.Errorf("table t belongs to %q, want %s", got, acme)
		}
		if refused := fmt.Sprint(rec["refused"]); !strings.Contains(refused, forged) || !strings.Contains(refused, bob) {
			t.Errorf("the forged plain backup was not refused naming %s: %v", bob, refused)
		}
	})
	for _, c := range []struct{ name, owner, want string }{
		{"superuser owner", "", "superuser"},
		{"missing owner", "nobody", "does not exist"},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := newFx(t, "pg_custom")
			owner := x.app + "_" + c.owner
			if c.owner == "" {
				owner = superuser(t)
			}
			setOwner(t, x, owner)
			db := x.db("acme")
			x.psql(t, "postgres", fmt.Sprintf("CREATE DATABASE %q", db))
			x.psql(t, db, "CREATE TABLE public.t (i int); INSERT INTO public.t VALUES (1);")
			x.dump(t, db, "acme", "custom")
			x.psql(t, "postgres", fmt.Sprintf("DROP DATABASE %q", db))
			res := x.restore(t, "acme")
			rec := recoveryOf(res, "database")
			if res["failed"] != true {
				t.Fatalf("restored to the layout's owner %s: %v", owner, rec)
			}
			if r := fmt.Sprint(rec["reason"]); !strings.Contains(r, owner) || !strings.Contains(r, c.want) {
				t.Errorf("reason does not name the layout's owner %s (%s): %s", owner, c.want, r)
			}
			if n := x.psql(t, "postgres", fmt.Sprintf("SELECT count(*) FROM pg_database WHERE datname = '%s'", db)); n != "0" {
				t.Errorf("database %s exists after the refusal", db)
			}
		})
	}
}
