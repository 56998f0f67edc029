package softdelete

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/mholt/archives"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

// This file exposes, for restores from an instance's regular backups
// (pkg/recovery), the pieces of archive restores they share: the host
// lock of an instance, the staging leftovers, the entry checks, the
// extraction of one tar entry through os.Root, metadata and the
// comparison of a staged tree, and the record of components moved aside
// by force.

// LockInstance takes the host-wide locks of every component location of
// instance name (the lock soft delete, restore and purge take); a run
// that holds one already makes it a *RefusedError.
func LockInstance(l *instance.Layout, name string) (func(), error) { return lockInstance(l, name) }

// CleanStaging removes the staging leftovers of a killed restore of
// instance name, returning how many there were.
func CleanStaging(ctx context.Context, l *instance.Layout, name string, opts instance.Options) (int, error) {
	return cleanStaging(ctx, l, name, opts)
}

// Target resolves component c of instance name through its kind.
func Target(app, name string, c instance.Component) (kind.Target, error) { return target(app, name, c) }

// CheckTarEntry refuses an entry whose name is absolute, climbs out with
// .., is not clean, or whose type is neither a regular file, a
// directory, a symlink nor a hard link inside the archive
// (*UnsafeEntryError).
func CheckTarEntry(hdr *tar.Header) error { return archive.CheckEntry(hdr) }

// WriteTarEntry writes one checked entry at rel under root, exactly as
// an archive restore does: directories and files created with private
// modes (metadata comes last, ApplyMeta), links written as links and
// never through, zeros as holes, every file synced.
func WriteTarEntry(root *os.Root, rel string, hdr *tar.Header, open func() (io.ReadCloser, error)) error {
	return archive.WriteEntry(root, rel, hdr, tarEntryInfo(hdr, open), true)
}

// WriteTarEntryUnsynced is WriteTarEntry without the sync of each file:
// its writeback is started (sync_file_range), and the caller syncs the
// filesystem (syncfs) before the tree is renamed into place.
func WriteTarEntryUnsynced(root *os.Root, rel string, hdr *tar.Header, open func() (io.ReadCloser, error)) error {
	return archive.WriteEntry(root, rel, hdr, tarEntryInfo(hdr, open), false)
}

// tarEntryInfo is the entry of hdr as the extraction reads it, its
// content from open.
func tarEntryInfo(hdr *tar.Header, open func() (io.ReadCloser, error)) archives.FileInfo {
	return archives.FileInfo{FileInfo: hdr.FileInfo(), Header: hdr, NameInArchive: hdr.Name, LinkTarget: hdr.Linkname,
		Open: func() (fs.File, error) {
			rc, err := open()
			if err != nil {
				return nil, err
			}
			return readFile{rc, hdr.FileInfo()}, nil
		}}
}

type readFile struct {
	io.ReadCloser
	fi fs.FileInfo
}

func (f readFile) Stat() (fs.FileInfo, error) { return f.fi, nil }

// ApplyMeta gives the entry at rel under root the owner, mode and mtime of
// e, never through a link.
func ApplyMeta(root *os.Root, rel string, e archive.FileEntry) error {
	return archive.ApplyMeta(root, rel, e)
}

// CompareTree checks the tree base under root against entries (their
// names mapped by rel): the same names and no others, kinds, sizes, link
// targets, hard links, sha256 and, with meta, modes, owners and mtimes
// (and fsyncs each directory). It returns why it differs, or "".
func CompareTree(root *os.Root, rel func(string) string, base string, entries []archive.FileEntry, meta bool) string {
	return archive.CompareTree(root, rel, base, entries, meta)
}

// CompareTreeShape is CompareTree with meta, files compared by size
// without being read again (their content was written from a stream
// checked as it was read), and no directory synced (the caller syncs the
// filesystem before the rename into place).
func CompareTreeShape(root *os.Root, rel func(string) string, base string, entries []archive.FileEntry) string {
	return archive.CompareTreeWith(root, rel, base, entries, true, false)
}

// Aside records the present components a forced restore from another
// source than an archive moves aside: the same tombstone (state
// quarantining, then quarantined) as a forced archive restore, under
// archive_dir, so that purge removes them after retention and a killed
// run is settled by the next.
type Aside struct {
	r *restorer
}

// NewAside opens archive_dir for instance name, settles the moves aside
// of a killed forced restore, and returns the recorder. The caller holds
// LockInstance.
func NewAside(ctx context.Context, l *instance.Layout, name, archiveDir string, opts instance.Options) (*Aside, func(), error) {
	st, err := openStore(ctx, nil, archiveDir)
	if err != nil {
		return nil, nil, err
	}
	sh := shelf{st: st, name: name}
	if _, err := sh.prepare(); err != nil {
		return nil, nil, err
	}
	unlock, err := sh.lock(ctx)
	if err != nil {
		return nil, nil, err
	}
	if _, err := settleAside(ctx, sh, l.App, opts); err != nil {
		unlock()
		return nil, nil, err
	}
	r := &restorer{l: l, sh: sh, req: RestoreRequest{Name: name, ArchiveDir: archiveDir, Options: opts},
		res: &RestoreResult{Replaced: []QuarantineMove{}}}
	return &Aside{r: r}, unlock, nil
}

// Move records, then moves the present component c (at from) aside into
// quarantine; it returns the move.
func (a *Aside) Move(ctx context.Context, c instance.Component, from string) (QuarantineMove, error) {
	k, err := kindOf(c.Type)
	if err != nil {
		return QuarantineMove{}, err
	}
	if err := a.r.ensureAside(); err != nil {
		return QuarantineMove{}, err
	}
	m := QuarantineMove{Component: c.Name, Type: c.Type, From: from, To: k.QuarantineTarget(from, a.r.aside.ID)}
	a.r.aside.Components = append(a.r.aside.Components, m)
	if err := a.r.aside.write(); err != nil {
		return QuarantineMove{}, err
	}
	if err := k.Quarantine(ctx, a.r.req.Options.Env(), m.move()); err != nil {
		return QuarantineMove{}, err
	}
	return m, nil
}

// Back moves a component moved aside back into place (its replacement
// could not be put there) and forgets the move.
func (a *Aside) Back(ctx context.Context, m QuarantineMove) error {
	k, err := kindOf(m.Type)
	if err != nil {
		return err
	}
	if err := k.Unquarantine(ctx, a.r.req.Options.Env(), m.move()); err != nil {
		return err
	}
	if a.r.aside != nil {
		kept := a.r.aside.Components[:0]
		for _, x := range a.r.aside.Components {
			if x.Component != m.Component {
				kept = append(kept, x)
			}
		}
		a.r.aside.Components = kept
		return a.r.aside.write()
	}
	return nil
}

// Close records the moves aside as done (quarantined, purged after
// retention).
func (a *Aside) Close() error {
	if a == nil {
		return nil
	}
	return a.r.closeAside()
}

// ID is the tombstone ID of the moves aside, "" before the first.
func (a *Aside) ID() string {
	if a == nil || a.r.aside == nil {
		return ""
	}
	return a.r.aside.ID
}

// AsideRetention is how long components moved aside by force are kept.
const AsideRetention = 30 * 24 * time.Hour

// IsRefused reports whether err is a refusal before anything changed
// (another run holds the instance).
func IsRefused(err error) (*RefusedError, bool) {
	var re *RefusedError
	ok := errors.As(err, &re)
	return re, ok
}

// SettleAside finishes, when archive_dir holds a folder for instance
// name, the record of components moved aside by a forced restore that was
// killed before it recorded them as done (whatever that restore's
// source). It returns how many records it settled. The caller holds
// LockInstance.
func SettleAside(ctx context.Context, l *instance.Layout, name, archiveDir string, opts instance.Options) (int, error) {
	st, err := openStore(ctx, nil, archiveDir)
	if err != nil {
		return 0, err
	}
	sh := shelf{st: st, name: name}
	if ok, err := sh.exists(ctx); err != nil || !ok {
		return 0, err
	}
	unlock, err := sh.lock(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	return settleAside(ctx, sh, l.App, opts)
}
