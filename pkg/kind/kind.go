// Package kind defines what a component kind is (a directory, a file, a
// systemd unit, a PostgreSQL database…) and keeps the registry of kinds.
//
// Every operation on a component (layout checks, discovery, archive,
// quarantine, purge, restore, RESTORE.md) asks the component's Kind, found
// by its type with Lookup, instead of switching on the type string. A new
// kind is one package under pkg/kinds that implements Kind, checks it at
// compile time (var _ kind.Kind = …) and calls Register from an init
// function, plus one blank import in pkg/kinds/kinds.go.
//
// Two archive shapes exist (Shape): trees of tar entries, which pkg/softdelete
// collects, extracts and compares itself (dir, file), and dumps, one file per
// component that the kind writes (Dump), checks (VerifyDump), restores into
// a staging place (Stage) and compares with a quarantined copy
// (CompareQuarantined) (postgresql, mysql, sqlite). A kind whose
// components are not archived (a systemd unit) has the shape None.
//
// Two quarantine shapes exist: a path moved into the trash directory of its
// parent (TrashNames is not nil), which purge removes with that trash entry,
// whole; or anything else the kind moves, checks and purges itself
// (PurgeCheck, PurgeMark, PurgeRemove), such as a renamed database.
package kind

import (
	"context"
	"io"
	"strings"
)

// Kind is one component type's behaviour. Methods that do not apply to a
// kind (Dump for a directory, Stage for a unit) are never called for it:
// callers look at Shape and TrashNames first; such methods return an
// error saying so.
type Kind interface {
	// Type is the value of a component's type key that selects this kind
	// (dir, file, postgresql, systemd_unit). It keys the registry, the
	// manifest's and tombstones' type fields and Env.Settings.
	Type() string
	// Key is the layout key that holds the component's template: path,
	// unit or database. A component of this kind must give it and no
	// other template key.
	Key() string
	// Family groups the kinds whose locators can collide (FamilyPath,
	// FamilyDatabase, FamilyUnit): two components of one family are
	// checked against each other for overlaps, at parse time and on the
	// host. FamilyPath locators are absolute paths, compared by prefix too.
	Family() string
	// Noun names a component of this kind in prose, such as "database" in
	// "the quarantined database …".
	Noun() string

	// CheckTemplate returns why a layout's raw template (with {name}
	// exactly once) is refused for this kind, or "": allowed characters,
	// the namespace the application must own (a literal prefix ending in a
	// separator), prefixes reserved for fleetsafe, paths that are unsafe.
	// The message is shown with the layout's file, line, key and value.
	CheckTemplate(raw string) string
	// CheckName returns why an instance name, valid for the layout, cannot
	// be used with component c (a database name PostgreSQL would
	// truncate), or "". It is called after the layout-wide name checks.
	CheckName(c Component, name string) string
	// Locate returns the locator of component c for an instance name: the
	// absolute path, unit name or database name. An error means the name
	// cannot be placed in the template (it would add a path element).
	Locate(c Component, name string) (string, error)

	// Names lists the instance names whose component c is on the host
	// (the template's matches), unvalidated and in any order. What one
	// discovery run lists once (databases, unit files) is cached in s.
	Names(ctx context.Context, s *Scan, c Component) ([]string, error)
	// State inspects component c of instance name: Locator always set,
	// Present, sizes and modification time when s.Sizes, Problem for a
	// component present but unsafe to touch. The caller sets Name, Type
	// and Optional.
	State(ctx context.Context, s *Scan, c Component, name string) (State, error)
	// Preflight returns why a present component must not be deleted now
	// (open sessions on a database) and what to do about it, or nil. It
	// must change nothing.
	Preflight(ctx context.Context, env Env, st State) (*Refusal, error)

	// Shape is how a present component is held in an archive.
	Shape() Shape
	// DumpExt is the suffix of a dump's archive entry after
	// components/<component>, such as ".pgdump"; "" unless Shape is Dump.
	DumpExt() string
	// Dump writes a consistent snapshot of the present component t to
	// file (Shape Dump). The returned Since tells what changed after the
	// snapshot was taken (sessions opened, files written); soft delete
	// asks it after the archive is verified, before anything moves.
	Dump(ctx context.Context, env Env, t Target, file string) (Since, error)
	// VerifyDump reads a dump stream and checks its structure (a
	// truncated or corrupted dump is an error). It may stop before EOF
	// (after the last data block): the caller reads the rest (to hash it).
	VerifyDump(r io.Reader) (DumpSummary, error)

	// QuarantineSource returns what quarantine moves for a present
	// component: its locator, or for a unit its unit file. False when
	// nothing can be moved (a unit known to systemctl only).
	QuarantineSource(st State) (string, bool)
	// MoveLocator returns the locator that a quarantine move's From
	// denotes (the inverse of QuarantineSource): restore and purge compare
	// it with what the host's layout resolves.
	MoveLocator(m Move) string
	// QuarantineTarget returns where source goes when deletion id
	// quarantines it: a path in the trash directory of its parent (same
	// filesystem, one atomic rename), or a quarantine name of the server.
	QuarantineTarget(source, id string) string
	// TrashNames lists the entry names a move puts into its trash
	// directory (the base name of m.To, and for SQLite its -wal and
	// -journal when present), or nil when the kind's quarantine is not in
	// a trash directory and it purges it itself.
	TrashNames(m Move) []string
	// Quarantine moves m.From to m.To (closing a database to
	// connections). A move already done is skipped; both sides present is
	// an error that says to resolve by hand.
	Quarantine(ctx context.Context, env Env, m Move) error
	// Unquarantine moves m.To back to m.From (reopening a database). A
	// move already undone is skipped.
	Unquarantine(ctx context.Context, env Env, m Move) error
	// Tidy removes what quarantine leaves empty once a move was undone
	// by a rollback (the deletion's trash directory). Errors are ignored.
	Tidy(m Move)
	// Held reports whether m.To still holds the quarantined component.
	Held(ctx context.Context, env Env, m Move) (bool, error)
	// CompareQuarantined checks a quarantined component (Shape Dump)
	// against the verified dump file extracted from its archive before it
	// is moved back; it returns why the quarantined copy cannot be
	// trusted, or "". An error means the quarantine could not be left as
	// it was (a database not closed to connections again).
	CompareQuarantined(ctx context.Context, env Env, m Move, dump string) (string, error)

	// PurgeLabel is the kind of a purged item in purge results:
	// "quarantine" for a trash entry, "database" for a database.
	PurgeLabel() string
	// PurgeCheck looks at a quarantine the kind purges itself, before
	// anything is removed: gone when neither the quarantine nor its
	// purging name exists (a restore brought it back), an error when it
	// cannot be purged safely. It changes nothing.
	PurgeCheck(ctx context.Context, env Env, m Move) (gone bool, err error)
	// PurgeMark renames the quarantine m.To to its purging name, so that
	// it is never taken for an intact copy again. Done already is no error.
	PurgeMark(ctx context.Context, env Env, m Move) error
	// PurgeRemove removes the quarantine under its purging name, for good.
	// Already removed is no error.
	PurgeRemove(ctx context.Context, env Env, m Move) error
	// PurgeLeft says what is left when PurgeRemove failed.
	PurgeLeft(m Move) string

	// Placeholder says why a present component counts as a placeholder
	// that restore replaces with deleted content without force (an empty
	// directory or file a package script made), or "".
	Placeholder(locator string) string
	// Staging is where component t is restored before one rename puts it
	// in place: a hidden directory beside the locator, or a staging
	// database name. It is stable for one component of one instance, so
	// that a killed restore's leftover is found by the next run.
	Staging(t Target) string
	// Stage restores the verified dump file into Staging(t) (Shape Dump)
	// and returns the staged place; a failure removes what it half-made
	// and says so.
	Stage(ctx context.Context, env Env, t Target, dump string) (string, error)
	// PutInPlace renames the staged component into t.Locator, never
	// replacing anything there.
	PutInPlace(ctx context.Context, env Env, t Target, staged string) error
	// DropStaging removes a staging place after a restore (placed: it was
	// put in place, so only an empty staging directory can remain) or
	// after a failure.
	DropStaging(ctx context.Context, env Env, staged string, placed bool) error
	// CleanStaging removes the leftover of a killed restore at
	// Staging(t), reporting whether there was one.
	CleanStaging(ctx context.Context, env Env, t Target) (bool, error)

	// RunbookTools names the client tools RESTORE.md's steps for this
	// kind need beyond bash, coreutils, sha256sum, tar and zstd, as a
	// phrase ("PostgreSQL's client tools `psql`, `createdb` and
	// `pg_restore`"), or "".
	RunbookTools() string
	// RunbookStep writes the RESTORE.md section that puts an archived
	// component back by hand (Shape other than None), or, for Shape None,
	// the step of "Start the instance" for it.
	RunbookStep(b *strings.Builder, s RunbookStep)
}

// Shape is how a kind's present component is held in an archive.
type Shape int

const (
	// None: not archived (a systemd unit: its unit file is quarantined
	// and RESTORE.md says how to start it).
	None Shape = iota
	// TreeDir: a directory tree of tar entries under
	// components/<component>, collected, extracted and compared by
	// pkg/softdelete.
	TreeDir
	// TreeFile: one regular file, the entry
	// components/<component>/<base name>.
	TreeFile
	// Dump: one file, components/<component><DumpExt>, written by Dump
	// and checked by VerifyDump.
	Dump
)

// IsTree reports whether the shape is a tree of tar entries.
func (s Shape) IsTree() bool { return s == TreeDir || s == TreeFile }

// Families.
const (
	FamilyPath     = "path"
	FamilyDatabase = "database"
	FamilyUnit     = "unit"
)

// Since reports what changed in a component after its snapshot was
// taken, one description per change; none is nil.
type Since func(ctx context.Context) ([]string, error)

// Refusal is why a component must not be deleted now, and what to do.
type Refusal struct {
	Reason string
	Advice string
}

// DumpSummary is what VerifyDump found in a dump: entries of its table of
// contents (or statements, tables) and data blocks (or rows sections).
type DumpSummary struct {
	Entries    int
	DataBlocks int
}

// Move is one component moved into quarantine; the same fields as
// softdelete.QuarantineMove, which converts to it.
type Move struct {
	Component string `json:"component"`
	Type      string `json:"type"`
	From      string `json:"from"`
	To        string `json:"to"`
}

// Target is one component of one instance, resolved once: what restore
// and soft delete carry from step to step.
type Target struct {
	App       string
	Instance  string
	Component Component
	// Locator is Kind.Locate's answer for this instance.
	Locator string
}

// RunbookStep is one component as RESTORE.md describes it.
type RunbookStep struct {
	// Component, Type, Locator and ArchivePath as in the manifest.
	Component   string
	Type        string
	Locator     string
	ArchivePath string
	Present     bool
	// Archive is the archive's path as the commands name it (its real
	// directory, or the <ARCHIVE_DIR> placeholder).
	Archive string
	// Tag is the archive ID as it appears in staging names (lower case
	// letters, digits and underscores).
	Tag string
	// Index is the component's position in the manifest.
	Index int
}
