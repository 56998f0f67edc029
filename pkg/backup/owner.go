package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
)

// Ownership: every backup file is credited to exactly one instance, or to
// none.
//
// The rule, for one backup rule R whose path is P = A{name}B:
//
//  1. Files: every regular file (not a .sha256 sidecar) matched by A*B,
//     the rule with any name in place of {name}.
//  2. Candidates C(F): every name N that passes the layout's name_pattern
//     and such that A N B, with N taken literally, matches F. With
//     data-{name}-*.tar.gz, data-acme-old-20260101.tar.gz has the
//     candidates acme and acme-old.
//  3. Known names K: the instances present on the host (all of them, not
//     only those asked for), the orphan names, and the names the caller
//     knows otherwise (instances with a directory under archive_dir: the
//     soft-deleted ones). An orphan name is the one candidate of a file
//     that has exactly one candidate and is not present: /b/acme-old/db-1.dump
//     under /b/{name}/db-*.dump names acme-old for certain. A file with
//     several candidates proves none of them: data-acme-20260101-0200.tar.gz
//     does not make "acme-20260101" a name, nor does an orphan file
//     data-a-c-1.tar.gz make "a" one.
//  4. Owners O(F) = C(F) ∩ K. One owner: the file is that name's. Two or
//     more: the file is ambiguous, credited to none of them, and each
//     present owner gets a failed "owner" check naming the file, the rule
//     and every owner. None: an orphan file whose name is not certain,
//     listed in orphans as "a or a-c".
//
// Every name in K is one a real file proves (or the host shows), so: a
// file is never credited to two names; a file credited to N can be N's;
// a file that only N among the names really in use can claim is credited
// to N; and an ambiguous file can really be the backup of two of them.
// Consequences: a file is never credited to two instances; a file whose
// only known candidate is N is N's. What this rule cannot see: a name that
// is gone without a trace but its backups, whose every backup a present
// instance can also claim (a layout with the single rule data-{name}-*.tar.gz
// and acme-old deleted). Give each instance its own directory
// (/var/backups/app/{name}/…), or put right after {name} a character that
// names cannot contain, and the question never arises.
type owners struct {
	// byRule[i] lists the files of rule i with their owners.
	byRule [][]ownedFile
	// unreadable[i] lists the directories rule i could not read.
	unreadable [][]dirError
	// present and orphan names.
	present, known map[string]bool
}

// ownedFile is one backup file and the known names that can claim it.
type ownedFile struct {
	backupFile
	owners     []string // sorted; credited only when len == 1
	candidates []string // every name the rule could expand to this file
	// link is set when the file is reached through a symbolic link below
	// the rule's fixed directory: it is then credited to none.
	link string
}

// dirError is a directory (or file) that could not be read while looking
// for backups.
type dirError struct {
	Dir string
	Err error
}

// splitRule splits a rule path around {name}.
func splitRule(r instance.BackupRule) (prefix, suffix string) {
	i := strings.Index(r.Path, instance.Placeholder)
	return r.Path[:i], r.Path[i+len(instance.Placeholder):]
}

// escapeGlob makes s match itself in a filepath.Match pattern.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// expandRule returns the rule's glob for one name.
func expandRule(r instance.BackupRule, name string) string {
	prefix, suffix := splitRule(r)
	return prefix + escapeGlob(name) + suffix
}

// candidates returns every name valid under the layout whose expansion of
// the rule matches file, sorted. Names never contain '/', so the name lies
// inside the path element that holds {name}.
func candidates(r instance.BackupRule, file string, valid func(string) bool) []string {
	prefix, suffix := splitRule(r)
	k := strings.Count(prefix, "/")
	elems := strings.Split(file, "/")
	if k >= len(elems) || len(elems) != strings.Count(r.Path, "/")+1 {
		return nil
	}
	elem := elems[k]
	pre := prefix[strings.LastIndex(prefix, "/")+1:]
	suf := suffix
	if j := strings.IndexByte(suf, '/'); j >= 0 {
		suf = suf[:j]
	}
	var out []string
	for i := 0; i < len(elem); i++ {
		if !hasMeta(pre) && i != len(pre) {
			continue
		}
		for j := i + 1; j <= len(elem); j++ {
			if !hasMeta(suf) && j != len(elem)-len(suf) {
				continue
			}
			n := elem[i:j]
			if !valid(n) {
				continue
			}
			if ok, _ := filepath.Match(pre+escapeGlob(n)+suf, elem); ok {
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// findOwners scans every rule once and credits each file to its owner.
// extraKnown are names known to exist besides the present instances (such
// as soft-deleted instances).
func findOwners(l *instance.Layout, present []string, extraKnown []string) *owners {
	return findOwnersIn(context.Background(), l, newRemotes(s3store.Settings{}), present, extraKnown)
}

// findOwnersIn is findOwners with the buckets of rules naming objects
// read through rem.
func findOwnersIn(ctx context.Context, l *instance.Layout, rem *remotes, present []string, extraKnown []string) *owners {
	o := &owners{present: map[string]bool{}, known: map[string]bool{}}
	for _, n := range present {
		o.present[n], o.known[n] = true, true
	}
	for _, n := range extraKnown {
		o.known[n] = true
	}
	valid := func(n string) bool { return l.ValidateName(n) == nil }
	cands := make([][][]string, len(l.Backups))
	files := make([][]backupFile, len(l.Backups))
	links := make([][]string, len(l.Backups))
	o.byRule = make([][]ownedFile, len(l.Backups))
	o.unreadable = make([][]dirError, len(l.Backups))
	for i, r := range l.Backups {
		prefix, suffix := splitRule(r)
		if isRemote(r.Path) {
			// Objects: no links, no directories; the listing gives size
			// and date.
			objs, errs := rem.glob(ctx, prefix+"*"+suffix)
			o.unreadable[i] = errs
			for _, f := range objs {
				if strings.HasSuffix(f.path, ".sha256") {
					continue
				}
				c := candidates(r, f.path, valid)
				if len(c) == 0 {
					continue
				}
				files[i] = append(files[i], f)
				cands[i] = append(cands[i], c)
				links[i] = append(links[i], "")
				if len(c) == 1 {
					o.known[c[0]] = true
				}
			}
			continue
		}
		matches, errs := globAll(prefix + "*" + suffix)
		o.unreadable[i] = errs
		for _, m := range matches {
			if strings.HasSuffix(m, ".sha256") {
				continue
			}
			link, err := linkedBackup(r, m)
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing
			}
			if err != nil {
				o.unreadable[i] = append(o.unreadable[i], dirError{Dir: m, Err: err})
				continue
			}
			fi, err := os.Stat(m)
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing
			}
			if err != nil {
				o.unreadable[i] = append(o.unreadable[i], dirError{Dir: m, Err: err})
				continue
			}
			if !fi.Mode().IsRegular() {
				continue
			}
			c := candidates(r, m, valid)
			if len(c) == 0 {
				continue
			}
			files[i] = append(files[i], backupFile{path: m, size: fi.Size(), mtime: fi.ModTime()})
			cands[i] = append(cands[i], c)
			links[i] = append(links[i], link)
			if link != "" {
				continue // proves no name: it may be another instance's file
			}
			if len(c) == 1 {
				// The only name that can have written this file.
				o.known[c[0]] = true
			}
		}
	}
	for i := range l.Backups {
		// A link that only leads to another file of the same rule, reached
		// without a link and with the same candidates ("latest" pointing
		// at the newest backup), is an alias of a file counted already:
		// not a finding, not counted twice.
		direct := map[string]string{}
		for j, f := range files[i] {
			if links[i][j] == "" {
				direct[f.path] = strings.Join(cands[i][j], "\x00")
			}
		}
		for j, f := range files[i] {
			if links[i][j] != "" {
				if real, err := filepath.EvalSymlinks(f.path); err == nil {
					if c, ok := direct[real]; ok && c == strings.Join(cands[i][j], "\x00") {
						continue
					}
				}
			}
			of := ownedFile{backupFile: f, candidates: cands[i][j], link: links[i][j]}
			for _, n := range cands[i][j] {
				if o.known[n] {
					of.owners = append(of.owners, n)
				}
			}
			o.byRule[i] = append(o.byRule[i], of)
		}
	}
	return o
}

// linkedBackup says how a backup file matched by rule r is reached
// through a symbolic link below the rule's fixed directory (the part of
// its path before the first element holding {name} or a wildcard), ""
// when it is not. The fixed directory itself may be a link (a backup
// volume mounted elsewhere): every instance shares it. Below it, each
// element is the instance's own location, and a link there (acme's
// directory or file leading to bob's) would credit acme with a file that
// is not in acme's location.
func linkedBackup(r instance.BackupRule, file string) (string, error) {
	elems := strings.Split(strings.TrimPrefix(r.Path, "/"), "/")
	fixed := "/"
	for _, e := range elems {
		if strings.Contains(e, instance.Placeholder) || hasMeta(e) {
			break
		}
		fixed = filepath.Join(fixed, e)
	}
	rel, err := filepath.Rel(fixed, file)
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%s is not under the rule's directory %s", file, fixed)
	}
	d := fixed
	for _, e := range strings.Split(rel, "/") {
		d = filepath.Join(d, e)
		fi, err := os.Lstat(d)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(d)
			return fmt.Sprintf("%s is a symbolic link to %s", d, target), nil
		}
	}
	return "", nil
}

// filesOf returns the files of rule i credited to name, and those name
// can claim but shares with another known name.
//
// A file reached through a symbolic link is never own: it is returned as
// ambiguous (with its link set) to every name the rule could expand to it.
func (o *owners) filesOf(i int, name string) (own []backupFile, ambiguous []ownedFile) {
	for _, f := range o.byRule[i] {
		if f.link != "" {
			if slices.Contains(f.candidates, name) {
				ambiguous = append(ambiguous, f)
			}
			continue
		}
		if !slices.Contains(f.owners, name) {
			continue
		}
		if len(f.owners) == 1 {
			own = append(own, f.backupFile)
		} else {
			ambiguous = append(ambiguous, f)
		}
	}
	return own, ambiguous
}

// certainFilesOf is filesOf for a restore of name: a file is credited
// to name only when no other valid name can have written it (its name
// matches the rule for name alone). The requested name is known because
// it is asked for, not because the file is proven its own: a file another
// valid name could claim (data-a-b-… under data-{name}-*, for a and a-b,
// both gone) is uncertain, as the damage inventory lists it, and is never
// restored as name's.
func (o *owners) certainFilesOf(i int, name string) (own []backupFile, ambiguous []ownedFile) {
	files, ambiguous := o.filesOf(i, name)
	for _, f := range files {
		j := slices.IndexFunc(o.byRule[i], func(of ownedFile) bool { return of.path == f.path })
		if j >= 0 && len(o.byRule[i][j].candidates) > 1 {
			of := o.byRule[i][j]
			of.owners = of.candidates
			ambiguous = append(ambiguous, of)
			continue
		}
		own = append(own, f)
	}
	return own, ambiguous
}

// unreadableFor returns the directories of rule i that could hold a backup
// of name and could not be read.
func (o *owners) unreadableFor(l *instance.Layout, i int, name string) []dirError {
	pattern := strings.Split(expandRule(l.Backups[i], name), "/")
	var out []dirError
	for _, e := range o.unreadable[i] {
		parts := strings.Split(e.Dir, "/")
		if len(parts) > len(pattern) {
			continue
		}
		if ok, _ := filepath.Match(strings.Join(pattern[:len(parts)], "/"), e.Dir); ok {
			out = append(out, e)
		}
	}
	return out
}

// globAll is filepath.Glob that reports the directories it cannot read
// instead of treating them as empty. A missing directory is no error: it
// holds no backup.
func globAll(pattern string) ([]string, []dirError) {
	elems := strings.Split(strings.TrimPrefix(pattern, "/"), "/")
	cur := []string{"/"}
	var errs []dirError
	for idx, e := range elems {
		last := idx == len(elems)-1
		var next []string
		for _, d := range cur {
			if !hasMeta(e) {
				p := filepath.Join(d, e)
				fi, err := os.Stat(p)
				switch {
				case err == nil:
					if last || fi.IsDir() {
						next = append(next, p)
					}
				case absent(err):
				default:
					errs = append(errs, dirError{Dir: d, Err: err})
				}
				continue
			}
			ents, err := os.ReadDir(d)
			if err != nil {
				if !absent(err) {
					errs = append(errs, dirError{Dir: d, Err: err})
				}
				continue
			}
			for _, ent := range ents {
				if ok, _ := filepath.Match(e, ent.Name()); !ok {
					continue
				}
				p := filepath.Join(d, ent.Name())
				if !last {
					fi, err := os.Stat(p)
					if err != nil {
						if !absent(err) {
							errs = append(errs, dirError{Dir: p, Err: err})
						}
						continue
					}
					if !fi.IsDir() {
						continue
					}
				}
				next = append(next, p)
			}
		}
		cur = next
	}
	sort.Strings(cur)
	return cur, errs
}

// absent reports an error that means "nothing there".
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// orphans lists the files no present instance owns or shares: those of
// orphan names, and those whose name is not certain.
func (o *owners) orphans(l *instance.Layout) []Orphan {
	byKey := map[string]*Orphan{}
	for i, r := range l.Backups {
		for _, f := range o.byRule[i] {
			if slices.ContainsFunc(f.owners, func(n string) bool { return o.present[n] }) {
				continue
			}
			names := f.owners
			if len(names) == 0 {
				names = f.candidates
			}
			name := strings.Join(names, " or ")
			key := name + "\x00" + r.Component
			if byKey[key] == nil {
				byKey[key] = &Orphan{Name: name, Component: r.Component}
			}
			byKey[key].Files = append(byKey[key].Files, f.path)
		}
	}
	out := []Orphan{}
	for _, v := range byKey {
		sort.Strings(v.Files)
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Component < out[j].Component
	})
	return out
}

// clockSkew is how far in the future a backup's mtime may be before it is
// a finding: clocks of the host and of a backup server writing over NFS
// differ by seconds, not minutes.
const clockSkew = 5 * time.Minute

// ruleLabel names a rule in messages: its line in the layout and its path.
func ruleLabel(r instance.BackupRule) string {
	if r.Line > 0 {
		return fmt.Sprintf("backups rule at line %d (path %s)", r.Line, r.Path)
	}
	return fmt.Sprintf("backups rule path %s", r.Path)
}

// runOnRules lists the rules where a name can run into a wildcard of its
// own path element (data-{name}-*.tar.gz: acme's rule also matches
// acme-old's files). Ownership stays sound there for the names it knows,
// but the backups of a name gone without another trace would be credited
// to the present name they extend: worth a warning on every run.
func runOnRules(l *instance.Layout) []string {
	var out []string
	for _, r := range l.Backups {
		prefix, suffix := splitRule(r)
		pre := prefix[strings.LastIndex(prefix, "/")+1:]
		suf := suffix
		if j := strings.IndexByte(suf, '/'); j >= 0 {
			suf = suf[:j]
		}
		if runsOn(l, suf, false) || runsOn(l, pre, true) {
			out = append(out, fmt.Sprintf("%s: a name can run into the wildcard after or before {name} "+
				"(the rule of a name also matches the backups of a longer name that extends it); "+
				"backups of such a longer name are told apart only while it is present, in archive_dir, "+
				"or has backups in a directory of its own: prefer /…/{name}/… or a separator names cannot contain", ruleLabel(r)))
		}
	}
	return out
}

// runsOn reports whether the literal text next to {name} in its element
// (after it, or before it when before is set) starts with a character
// names can contain and is followed, further away, by a wildcard; or is
// itself a wildcard.
func runsOn(l *instance.Layout, side string, before bool) bool {
	if side == "" {
		return false
	}
	var next byte
	var rest string
	if before {
		next, rest = side[len(side)-1], side[:len(side)-1]
	} else {
		next, rest = side[0], side[1:]
	}
	if strings.IndexByte("*?[", next) >= 0 {
		return true
	}
	if next == '\\' || !hasMeta(rest) {
		return false
	}
	c := string(next)
	return l.ValidateName("a"+c+"a") == nil || l.ValidateName("a"+c) == nil || l.ValidateName(c+"a") == nil
}

// foreignDump is a pg_custom dump, among an instance's files, whose header
// names another database.
type foreignDump struct {
	backupFile
	database string
}

// splitForeignDumps moves out of files every dump whose recorded name
// (read by name, the format's hook in formathook.go: a pg_custom header's
// database) is another than want: another instance's dump is never
// counted as this instance's newest or freshest backup. Only the header is
// read; a file name cannot read stays (its format check speaks for it).
func splitForeignDumps(ctx context.Context, files []backupFile, want string, name func(r io.Reader) (string, bool)) (own []backupFile, foreign []foreignDump) {
	for _, f := range files {
		if db, ok := readName(ctx, f.rem, f.path, name); ok && db != want {
			foreign = append(foreign, foreignDump{backupFile: f, database: db})
			continue
		}
		own = append(own, f)
	}
	return own, foreign
}

// readName opens a backup (file or object) and reads the name its
// header records with name.
func readName(ctx context.Context, rem *remotes, path string, name func(r io.Reader) (string, bool)) (string, bool) {
	rc, err := openContent(ctx, rem, path)
	if err != nil {
		return "", false
	}
	defer rc.Close()
	return name(rc)
}

// dumpDatabase returns the database named in a custom-format dump's
// header.
func dumpDatabase(ctx context.Context, rem *remotes, path string) (string, bool) {
	return readName(ctx, rem, path, headerDatabase)
}

// headerDatabase reads the database named in a custom-format dump's
// header.
func headerDatabase(r io.Reader) (string, bool) {
	sum, err := pgdump.ReadHeader(r)
	if err != nil {
		return "", false
	}
	return sum.Database, true
}
