package pgdump

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
)

// DatabaseEntries are what a custom-format archive records of the database
// itself rather than of its objects: pg_restore prints them only with
// --create (pg_restore --create -f - dump shows them), so a restore into
// an existing (staging) database loses them unless they are applied apart.
type DatabaseEntries struct {
	// Name is the database the archive was dumped from.
	Name string
	// Owner is the owner its DATABASE entry names ("" when the archive
	// has no DATABASE entry).
	Owner string
	// SQL are the definitions of the database-level entries, in archive
	// order: DATABASE PROPERTIES (ALTER DATABASE … SET, connection
	// limit…), and the ACL, COMMENT and SECURITY LABEL entries of the
	// database. They name the database as it was dumped (Name). They are
	// the archive's text: hostile input, to be run only by a session that
	// can reach nothing but the staging database.
	SQL []DatabaseSQL
	// ObjectOwners are the distinct owners the archive names for its
	// objects (every entry but the database-level ones).
	ObjectOwners []string
	// DefaultACL are the archive's DEFAULT ACL entries (ALTER DEFAULT
	// PRIVILEGES FOR ROLE …), in archive order. The unprivileged restore
	// role may not run them (it is a member of no role): RestoreExcept
	// leaves them out, and the caller applies them, checked, after the
	// hand-over to the owner. Archive text: hostile input.
	DefaultACL []DefaultACL
}

// DefaultACL is one DEFAULT ACL entry of an archive.
type DefaultACL struct {
	ID  int64  // its dump id (pg_restore -l's first column)
	SQL string // its definition, one statement a line
}

// DatabaseSQL is one database-level entry of an archive.
type DatabaseSQL struct {
	Desc string // DATABASE PROPERTIES, ACL, COMMENT, SECURITY LABEL
	SQL  string
}

// databaseLevel says whether a table of contents entry is about the
// database itself.
func databaseLevel(desc, tag string) bool {
	switch desc {
	case "DATABASE", "DATABASE PROPERTIES":
		return true
	case "ACL", "COMMENT", "SECURITY LABEL":
		return strings.HasPrefix(tag, "DATABASE ")
	}
	return false
}

// ReadDatabaseEntries reads the header and table of contents of a
// custom-format archive (not its data) and returns its database-level
// entries and owners.
func ReadDatabaseEntries(src io.Reader) (*DatabaseEntries, error) {
	r := &reader{r: bufio.NewReaderSize(src, 256<<10)}
	sum, _, entries, err := r.headerAndTOC()
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(entries))
	for id := range entries {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := &DatabaseEntries{Name: sum.Database}
	owners := map[string]bool{}
	for _, id := range ids {
		e := entries[id]
		switch {
		case e.desc == "DATABASE":
			if out.Owner != "" && out.Owner != e.owner {
				return nil, &StructureError{Msg: fmt.Sprintf("two DATABASE entries naming the owners %q and %q (corrupted)", out.Owner, e.owner)}
			}
			out.Owner = e.owner
		case e.desc == "DEFAULT ACL":
			out.DefaultACL = append(out.DefaultACL, DefaultACL{ID: e.id, SQL: e.defn})
			if e.owner != "" {
				owners[e.owner] = true
			}
		case databaseLevel(e.desc, e.tag):
			if strings.TrimSpace(e.defn) != "" {
				out.SQL = append(out.SQL, DatabaseSQL{Desc: e.desc, SQL: e.defn})
			}
		case e.owner != "":
			owners[e.owner] = true
		}
	}
	for o := range owners {
		out.ObjectOwners = append(out.ObjectOwners, o)
	}
	sort.Strings(out.ObjectOwners)
	return out, nil
}

// FmtID quotes an identifier as pg_dump's fmtId does when it writes SQL:
// bare when it is lowercase letters, digits, _ and $ not starting with a
// digit or $, quoted otherwise (keywords are not known here: a database
// named as a keyword is quoted by pg_dump and bare here, so its entries
// are not found by RenameDatabase, which then fails the restore).
func FmtID(name string) string {
	bare := name != ""
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '$')) {
			bare = false
			break
		}
	}
	if bare {
		return name
	}
	return QuoteIdent(name)
}
