package mariadb

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// CompareWithDump tells whether the quarantine of database name still
// holds what the mariadb-dump r (the archived dump, verified) holds: it
// loads r into a scratch database (ScratchPrefix, dropped whatever
// happens) and compares the two by TableDigest (structure and every row
// of every table) and by their views, routines, triggers and events (the
// quarantine's kept definitions against the scratch database's). It
// returns why the quarantine cannot be trusted, or "" when it matches;
// an error when the comparison itself could not run. A quarantine that
// matches is given the archived tables' AUTO_INCREMENT counters, which
// the comparison leaves out (alignCounters): the only change it makes.
func CompareWithDump(ctx context.Context, c Conn, quarantine, name string, r io.Reader) (string, error) {
	if err := checkOwnName(quarantine); err != nil {
		return "", err
	}
	admin, err := c.Open(ctx, "")
	if err != nil {
		return "", err
	}
	defer admin.Close()
	if p, err := Purging(ctx, admin, quarantine); err != nil {
		return "", err
	} else if p {
		return "it is being purged", nil
	}
	kept, err := keptDefinitions(ctx, admin, quarantine)
	if err != nil {
		return err.Error(), nil
	}
	if kept == nil {
		return "it keeps no definitions of its views, routines, triggers and events", nil
	}
	if kept.Database != name {
		return fmt.Sprintf("its kept definitions are those of %q", kept.Database), nil
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	scratch := ScratchPrefix + hex.EncodeToString(b)
	if testHookScratch != nil {
		testHookScratch(scratch)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = admin.ExecContext(dctx, "DROP DATABASE IF EXISTS "+QuoteIdent(scratch))
	}()
	if err := loadNew(ctx, c, scratch, kept.Charset, kept.Collation, requalifyDump(r, name, scratch)); err != nil {
		return fmt.Sprintf("its archived dump cannot be loaded to compare it (%v)", err), nil
	}
	want, err := ReadDefinitions(ctx, admin, scratch)
	if err != nil {
		return "", err
	}
	rename(want, scratch, name)
	if d := diffDefinitions(kept, want); d != "" {
		return "its views, routines, triggers or events differ from the archived dump's: " + d, nil
	}
	got, err := TableDigest(ctx, c, quarantine)
	if err != nil {
		return "", err
	}
	wantDigest, err := TableDigest(ctx, c, scratch)
	if err != nil {
		return "", err
	}
	if got != wantDigest {
		return "its tables or rows differ from the archived dump's (mariadb-dump of the quarantine and of the archived dump loaded into a scratch database differ)", nil
	}
	// The digests leave the counters out (autoIncFilter); the quarantine
	// takes the archived ones, so that it comes back as the archive
	// would.
	if err := alignCounters(ctx, admin, quarantine, scratch); err != nil {
		return "", err
	}
	return "", nil
}

// rename makes definitions read from database from those of database to:
// from's name, where it qualifies a name in a statement, goes.
func rename(d *Definitions, from, to string) {
	d.Database = to
	for i := range d.Objects {
		d.Objects[i].SQL = requalify(d.Objects[i].SQL, from, to)
	}
}

// diffDefinitions says how the kept definitions differ from those read
// from the archived dump, "" when they do not.
func diffDefinitions(kept, dump *Definitions) string {
	var out []string
	tk, td := slices.Clone(kept.Tables), slices.Clone(dump.Tables)
	slices.Sort(tk)
	slices.Sort(td)
	if !slices.Equal(tk, td) {
		out = append(out, fmt.Sprintf("tables %v, the dump's %v", tk, td))
	}
	key := func(d Definition) string { return d.Kind + " " + QuoteIdent(d.Name) }
	byKey := map[string]Definition{}
	for _, d := range dump.Objects {
		byKey[key(d)] = d
	}
	for _, k := range kept.Objects {
		d, ok := byKey[key(k)]
		switch {
		case !ok:
			out = append(out, strings.ToLower(key(k))+" is not in the dump")
		case normalize(d.SQL) != normalize(k.SQL) || d.SQLMode != k.SQLMode:
			out = append(out, strings.ToLower(key(k))+" has another definition")
		}
		delete(byKey, key(k))
	}
	for k := range byKey {
		out = append(out, strings.ToLower(k)+" is only in the dump")
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// normalize removes what a reload through mariadb-dump changes in a
// statement but not in the object: version comments around a trigger's
// or event's parts.
func normalize(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// PurgingComment is the comment of a quarantine database being purged:
// set by MarkPurging before DROP DATABASE (which drops its tables one by
// one), so that a quarantine a purge stopped is never taken for an intact
// one.
const PurgingComment = "fleetsafe: being purged"

// MarkPurging marks quarantine as being purged; gone already is no error.
func MarkPurging(ctx context.Context, db *sql.DB, quarantine string) error {
	if err := checkOwnName(quarantine); err != nil {
		return err
	}
	ok, err := Exists(ctx, db, quarantine)
	if err != nil || !ok {
		return err
	}
	conn, err := session(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+QuoteIdent(quarantine)+commentClause(PurgingComment)); err != nil {
		return fmt.Errorf("mark %q as being purged: %w", quarantine, err)
	}
	return nil
}

// Purging reports whether quarantine exists marked as being purged.
func Purging(ctx context.Context, db *sql.DB, quarantine string) (bool, error) {
	var c sql.NullString
	err := db.QueryRowContext(ctx, "SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE BINARY SCHEMA_NAME = ?", quarantine).Scan(&c)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the comment of %q: %w", quarantine, err)
	}
	return c.String == PurgingComment, nil
}

// requalify puts database to's name where from's qualifies a name in a
// statement ("`from`.t" becomes "`to`.t"; "from.t", "to.t"). A trigger's
// statement is kept as it was written, qualifier and all, and
// mariadb-dump writes it so, as it writes a view's call of a stored
// function of its own database: loaded into another database (a staging
// or scratch one), such a statement would reach the original's objects.
// Requalified on the way in, and back once read (rename), it reaches the
// same objects and reads as it did.
func requalify(stmt, from, to string) string {
	stmt = strings.ReplaceAll(stmt, QuoteIdent(from)+".", QuoteIdent(to)+".")
	if plainIdent.MatchString(from) && plainIdent.MatchString(to) {
		stmt = regexp.MustCompile(`(^|[^A-Za-z0-9_$.`+"`"+`])`+regexp.QuoteMeta(from)+`\.`).ReplaceAllString(stmt, "${1}"+to+".")
	}
	return stmt
}

var plainIdent = regexp.MustCompile(`^[A-Za-z0-9_$]+$`)

// requalifyDump passes a mariadb-dump of own through, its trigger and
// view statements requalified for database into (requalify); own ""
// is the database its header names: a trigger starts
// with mariadb-dump's "/*!50003 CREATE*/" and a TRIGGER and ends with
// ";;"; a view's statement is one line starting "/*!50001 VIEW " (the
// server writes a call of a stored function qualified, even of its own
// database's).
func requalifyDump(r io.Reader, own, into string) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		br := bufio.NewReaderSize(r, 1<<16)
		in := false
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				if own == "" {
					// The header names the dumped database:
					// "-- Host: localhost    Database: name".
					if i := strings.Index(line, "    Database: "); strings.HasPrefix(line, "-- Host: ") && i > 0 {
						own = strings.TrimRight(line[i+len("    Database: "):], "\r\n")
					}
				}
				if !in && own != "" && (strings.HasPrefix(line, "/*!50003 CREATE*/") && strings.Contains(line, "TRIGGER") || strings.HasPrefix(line, "/*!50001 VIEW ")) {
					in = true
				}
				if in {
					line = requalify(line, own, into)
					if t := strings.TrimRight(line, "\r\n"); strings.HasSuffix(t, ";;") || strings.HasPrefix(line, "/*!50001 VIEW ") && strings.HasSuffix(t, "*/;") {
						in = false
					}
				}
				if _, werr := io.WriteString(pw, line); werr != nil {
					pw.CloseWithError(werr)
					return
				}
			}
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}
