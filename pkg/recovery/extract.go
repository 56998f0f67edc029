package recovery

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// BackupContentError is a backup whose content cannot be restored as the
// component: an entry outside the component, an unsafe entry, a
// duplicate, an entry larger than the space left, a tree that does not
// come out as listed.
type BackupContentError struct {
	Backup string
	Entry  string
	Reason string
	// Err is the error the reason was made from, when there is one.
	Err error
}

// Unwrap returns the error the reason was made from.
func (e *BackupContentError) Unwrap() error { return e.Err }

// PlaceError is a backup that passed every check but cannot be staged
// because of the place it goes to (no space left, a read-only or
// forbidden directory, a database server down): not a property of the
// backup, so no older backup is used instead; the component fails and the
// same backup is the one to use once the place is fixed.
type PlaceError struct {
	Backup string
	Reason string
	Err    error
}

func (e *PlaceError) Error() string { return fmt.Sprintf("backup %s: %s", e.Backup, e.Reason) }

// Unwrap returns the underlying error.
func (e *PlaceError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *PlaceError) Hint() string {
	return "nothing was put in place and the staging was removed; fix the place (make room, fix permissions, start the server) and run again: the same backup will be used"
}

// placeFailure says whether err comes from the place a backup is staged
// into rather than from the backup.
func placeFailure(err error) bool {
	var pe *PlaceError
	if errors.As(err, &pe) {
		return true
	}
	// A kind's error that says the place is at fault (a layout's
	// database owner that cannot be used): older backups would fail alike.
	var pf interface{ PlaceFault() bool }
	if errors.As(err, &pf) && pf.PlaceFault() {
		return true
	}
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM,
		syscall.EIO, syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	// PostgreSQL's own words (pg_restore and psql report them as text).
	msg := err.Error()
	for _, s := range []string{"No space left on device", "could not extend file", "Disk quota exceeded",
		"Read-only file system", "could not connect to server", "connection to server", "server closed the connection unexpectedly",
		"the database system is starting up", "the database system is shutting down", "too many connections",
		"remaining connection slots are reserved"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (e *BackupContentError) Error() string {
	if e.Entry == "" {
		return fmt.Sprintf("backup %s: %s", e.Backup, e.Reason)
	}
	return fmt.Sprintf("backup %s: entry %q: %s", e.Backup, e.Entry, e.Reason)
}

// Hint tells the operator what to do.
func (e *BackupContentError) Hint() string {
	return "nothing was written outside the staging directory, which was removed; inspect the backup, and restore by hand from it only if it is what you expect"
}

// entry is one entry of a tar or zip backup, as a tar header.
type entry struct {
	hdr  *tar.Header
	open func() (io.ReadCloser, error)
}

// eachEntry calls fn with every entry of a tar, tar_gz, tar_zst or zip
// backup, in order. Zip entries carry no owner: they get uid and gid.
func eachEntry(ctx context.Context, file, format string, uid, gid int, fn func(entry) error) error {
	if format == "zip" {
		return eachZip(ctx, file, uid, gid, fn)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	switch format {
	case "tar_gz":
		gz, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	case "tar_zst":
		// Windows up to 256 MiB, as backup_verify reads them: a larger
		// one is refused, never an unbounded allocation.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(256<<20), zstd.WithDecoderMaxMemory(512<<20))
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	case "tar":
	default:
		return fmt.Errorf("format %s is not a tar or zip backup", format)
	}
	// A tar cut at an entry boundary is refused (*backup.TruncatedTarError).
	return eachTarEntry(ctx, backup.NewTarReader(r), fn)
}

// eachTarEntry calls fn with every entry of the tar stream tr, in order,
// to its end.
func eachTarEntry(ctx context.Context, tr *backup.TarReader, fn func(entry) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if err := fn(entry{hdr: hdr, open: func() (io.ReadCloser, error) { return io.NopCloser(tr), nil }}); err != nil {
			return err
		}
	}
}

func eachZip(ctx context.Context, file string, uid, gid int, fn func(entry) error) error {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		mode := zf.Mode()
		hdr := &tar.Header{Name: zf.Name, ModTime: zf.Modified, Uid: uid, Gid: gid, Format: tar.FormatPAX,
			Mode: int64(mode.Perm()) | unixBits(mode)}
		switch {
		case mode.IsDir():
			hdr.Typeflag = tar.TypeDir
		case mode&fs.ModeSymlink != 0:
			rc, err := zf.Open()
			if err != nil {
				return fmt.Errorf("entry %s: %w", zf.Name, err)
			}
			target, err := io.ReadAll(io.LimitReader(rc, 4097))
			rc.Close()
			if err != nil {
				return fmt.Errorf("entry %s: %w", zf.Name, err)
			}
			if len(target) > 4096 {
				return &BackupContentError{Backup: file, Entry: zf.Name, Reason: "symbolic link target longer than 4096 bytes"}
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, string(target)
		case mode.IsRegular():
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(zf.UncompressedSize64)
			if hdr.Size < 0 {
				return &BackupContentError{Backup: file, Entry: zf.Name, Reason: "size out of range"}
			}
		default:
			hdr.Typeflag = tar.TypeChar // refused by the entry check
		}
		zf := zf
		if err := fn(entry{hdr: hdr, open: func() (io.ReadCloser, error) { return zf.Open() }}); err != nil {
			return err
		}
	}
	return nil
}

// unixBits turns Go's setuid, setgid and sticky bits into tar's.
func unixBits(m fs.FileMode) int64 {
	var b int64
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// Entry layouts a backup of a dir or file component may have.
const (
	layoutTop     = "top"     // base/… (tar -C parent base)
	layoutFull    = "full"    // path/without/leading/slash/base/… (tar of the absolute path)
	layoutContent = "content" // ./… (tar -C dir .)
)

// mapper maps the names of a backup's entries to paths under the staging
// directory (base/…), deciding the backup's layout from its first entry
// and holding every later entry to it.
type mapper struct {
	backup string
	base   string // the component's base name
	full   string // its path without the leading /
	isDir  bool
	layout string
}

// describe says which layouts are accepted, for messages.
func (m *mapper) describe() string {
	if !m.isDir {
		return fmt.Sprintf("one regular file named %s or %s", m.base, m.full)
	}
	return fmt.Sprintf("entries under %s/ (tar -C <parent> %s), ./ (tar -C <dir> .) or %s/ (the absolute path)", m.base, m.base, m.full)
}

// rel returns where entry name goes under the staging directory.
func (m *mapper) rel(raw string) (string, error) {
	name := strings.TrimSuffix(raw, "/")
	dot := name == "." || strings.HasPrefix(name, "./")
	for strings.HasPrefix(name, "./") {
		name = strings.TrimLeft(strings.TrimPrefix(name, "./"), "/")
	}
	if name == "." {
		name = ""
	}
	if name != "" {
		if err := softdelete.CheckTarEntry(&tar.Header{Name: name, Typeflag: tar.TypeReg}); err != nil {
			return "", &BackupContentError{Backup: m.backup, Entry: raw, Reason: err.Error()}
		}
	}
	under := func(top string) (string, bool) {
		switch {
		case name == top:
			return "", true
		case strings.HasPrefix(name, top+"/"):
			return strings.TrimPrefix(name, top+"/"), true
		}
		return "", false
	}
	if m.layout == "" {
		switch _, full := under(m.full); {
		case full:
			m.layout = layoutFull
		case name == m.base || strings.HasPrefix(name, m.base+"/"):
			m.layout = layoutTop
		case dot && m.isDir:
			m.layout = layoutContent
		default:
			return "", &BackupContentError{Backup: m.backup, Entry: raw,
				Reason: fmt.Sprintf("the backup does not hold the component where expected: %s", m.describe())}
		}
	}
	var rest string
	var ok bool
	switch m.layout {
	case layoutFull:
		rest, ok = under(m.full)
	case layoutTop:
		rest, ok = under(m.base)
	case layoutContent:
		rest, ok = name, dot
	}
	if !ok {
		return "", &BackupContentError{Backup: m.backup, Entry: raw,
			Reason: fmt.Sprintf("outside the component (the backup's first entry put it under %s): a backup of one component holds only it", m.describe())}
	}
	if rest == "" {
		return m.base, nil
	}
	if !m.isDir {
		return "", &BackupContentError{Backup: m.backup, Entry: raw, Reason: "a file component's backup holds one file and nothing under it"}
	}
	return m.base + "/" + rest, nil
}

// stagedTree is what extractTree wrote.
type stagedTree struct {
	entries []archive.FileEntry
	// dropped names the extended attributes and ACLs the backup carries
	// that are not restored.
	dropped []string
	layout  string
	files   int
	bytes   int64
}

// extractTree extracts a tar or zip backup of a dir or file component
// into the staging directory top (created empty by the caller), under
// base, through os.Root: an entry that is unsafe, outside the component,
// a duplicate or larger than the space left is refused before a byte of
// it is written. The tree is then given its metadata and compared with
// what was read (names, kinds, sizes, links, modes, owners, mtimes), and
// its filesystem is synced (syncfs) before the caller renames it into
// place.
//
// With top "" nothing is written: every entry is read and judged as the
// extraction would (check mode's plan refuses what the run would refuse).
func extractTree(ctx context.Context, backupFile, content, format, locator string, isDir bool, top string, mtime time.Time) (*stagedTree, error) {
	x, err := newExtraction(backupFile, locator, isDir, top, mtime)
	if err != nil {
		return nil, err
	}
	defer x.close()
	if err := eachEntry(ctx, content, format, x.uid, x.gid, x.add); err != nil {
		return nil, x.fail(err)
	}
	return x.finish()
}

// extractChecked extracts a tar, tar_gz or tar_zst candidate into top as
// extractTree does, in the same read as backup.JudgeContent's checks
// (checksum, structure, the compression's own checksum): the backup is
// read and decompressed once. failed are the checks the candidate fails
// (the staged tree is then not to be used); err is the extraction's own
// failure, when it stopped before the checks could end.
func extractChecked(ctx context.Context, c backup.Candidate, older *backup.Candidate, locator string, isDir bool, top string) (*stagedTree, []backup.CheckResult, error) {
	x, err := newExtraction(c.Path, locator, isDir, top, c.MTime)
	if err != nil {
		return nil, nil, err
	}
	defer x.close()
	failed, walkErr, err := backup.JudgeContent(ctx, c, older, "", &backup.Staging{Tar: func(tr *backup.TarReader) error {
		return eachTarEntry(ctx, tr, x.add)
	}})
	switch {
	case err != nil:
		return nil, nil, err
	case walkErr != nil:
		return nil, nil, x.fail(walkErr)
	case len(failed) > 0:
		return nil, failed, nil
	}
	tree, err := x.finish()
	return tree, nil, err
}

// extraction is one extraction of a tree backup into a staging directory
// (or, dry, the same judgement of every entry without writing).
type extraction struct {
	backupFile string
	isDir      bool
	top        string
	mtime      time.Time
	dry        bool
	root       *os.Root
	budget     int64
	uid, gid   int
	m          *mapper
	out        *stagedTree
	seen       map[string]int
}

func newExtraction(backupFile, locator string, isDir bool, top string, mtime time.Time) (*extraction, error) {
	x := &extraction{backupFile: backupFile, isDir: isDir, top: top, mtime: mtime, dry: top == "",
		budget: math.MaxInt64, out: &stagedTree{}, seen: map[string]int{}}
	if !x.dry {
		var err error
		if x.root, err = os.OpenRoot(top); err != nil {
			return nil, err
		}
		if x.budget, err = freeBytes(top); err != nil {
			x.root.Close()
			return nil, err
		}
	}
	x.uid, x.gid = ownerOf(filepath.Dir(locator))
	x.m = &mapper{backup: backupFile, base: filepath.Base(locator), full: strings.TrimPrefix(locator, "/"), isDir: isDir}
	return x, nil
}

func (x *extraction) close() {
	if x.root != nil {
		x.root.Close()
	}
}

// add judges one entry and writes it.
func (x *extraction) add(e entry) error {
	backupFile, m, out, seen, isDir := x.backupFile, x.m, x.out, x.seen, x.isDir
	hdr := e.hdr
	rel, err := m.rel(hdr.Name)
	if err != nil {
		return err
	}
	check := *hdr
	check.Name = rel
	if check.Typeflag == tar.TypeRegA {
		check.Typeflag = tar.TypeReg
	}
	if hdr.Typeflag == tar.TypeLink {
		lrel, err := m.rel(hdr.Linkname)
		if err != nil {
			return &BackupContentError{Backup: backupFile, Entry: hdr.Name, Reason: "hard link target: " + err.Error()}
		}
		check.Linkname = lrel
	}
	if err := softdelete.CheckTarEntry(&check); err != nil {
		return &BackupContentError{Backup: backupFile, Entry: hdr.Name, Reason: err.Error()}
	}
	if !isDir && check.Typeflag != tar.TypeReg {
		return &BackupContentError{Backup: backupFile, Entry: hdr.Name, Reason: "a file component's backup must hold one regular file"}
	}
	for d := path.Dir(rel); d != "." && d != "/"; d = path.Dir(d) {
		if i, ok := seen[d]; ok && out.entries[i].Type != "dir" {
			return &BackupContentError{Backup: backupFile, Entry: hdr.Name, Reason: fmt.Sprintf("%s, an earlier entry, is a %s: nothing is written through it", d, out.entries[i].Type)}
		}
	}
	if _, dup := seen[rel]; dup {
		return &BackupContentError{Backup: backupFile, Entry: hdr.Name, Reason: "a second entry with the same name (which one is the component's is not known)"}
	}
	if rel == m.base && isDir && check.Typeflag != tar.TypeDir {
		return &BackupContentError{Backup: backupFile, Entry: hdr.Name, Reason: "the component's own entry is not a directory"}
	}
	if check.Typeflag == tar.TypeReg {
		if hdr.Size > x.budget-out.bytes {
			return &PlaceError{Backup: backupFile,
				Reason: fmt.Sprintf("entry %q: %d bytes, more than the %d bytes left on the staging filesystem %s", hdr.Name, hdr.Size, max(x.budget-out.bytes, 0), x.top)}
		}
	}
	fe := archive.FileEntry{Path: rel, Mode: uint32(fs.FileMode(hdr.Mode).Perm() | goBits(hdr.Mode)),
		UID: hdr.Uid, GID: hdr.Gid, MTime: hdr.ModTime, Size: 0}
	open := e.open
	switch check.Typeflag {
	case tar.TypeDir:
		fe.Type = "dir"
	case tar.TypeSymlink:
		fe.Type, fe.LinkTarget = "symlink", hdr.Linkname
	case tar.TypeLink:
		fe.Type, fe.LinkTarget = "hardlink", check.Linkname
		if _, ok := seen[check.Linkname]; !ok {
			return &BackupContentError{Backup: backupFile, Entry: hdr.Name, Reason: "hard link to an entry not extracted before it"}
		}
	case tar.TypeReg:
		fe.Type, fe.Size = "file", hdr.Size
		open = func() (io.ReadCloser, error) {
			rc, err := e.open()
			if err != nil {
				return nil, err
			}
			// One byte more than the entry says: a longer stream shows
			// as a size the check after the write refuses.
			return readCloser{io.LimitReader(rc, hdr.Size+1), rc}, nil
		}
	}
	if !x.dry {
		if err := writeStaged(x.root, rel, &check, open); err != nil {
			return &BackupContentError{Backup: backupFile, Entry: hdr.Name, Reason: err.Error(), Err: err}
		}
	}
	if check.Typeflag == tar.TypeReg {
		out.files++
		out.bytes += hdr.Size
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") || strings.HasPrefix(k, "SCHILY.acl.") || strings.HasPrefix(k, "LIBARCHIVE.xattr.") {
			out.dropped = append(out.dropped, rel+" ("+k+")")
		}
	}
	seen[rel] = len(out.entries)
	out.entries = append(out.entries, fe)
	return nil
}

// fail turns an error of the walk into the extraction's: a content or
// place error as it is, anything else a content error of the read.
func (x *extraction) fail(err error) error {
	var ce *BackupContentError
	var pe *PlaceError
	if errors.As(err, &ce) || errors.As(err, &pe) {
		return err
	}
	return &BackupContentError{Backup: x.backupFile, Reason: "read: " + err.Error()}
}

// finish gives the staged tree its metadata, compares it with what was
// read and syncs its filesystem.
func (x *extraction) finish() (*stagedTree, error) {
	out, m, seen, uid, gid, root := x.out, x.m, x.seen, x.uid, x.gid, x.root
	if len(out.entries) == 0 {
		return nil, &BackupContentError{Backup: x.backupFile, Reason: "no entry for the component: expected " + m.describe()}
	}
	out.layout = m.layout
	if x.dry {
		return out, nil
	}
	if _, ok := seen[m.base]; !ok {
		// Entries without their top directory (tar of the files only):
		// the directory gets the parent's owner, mode 0750 and the
		// backup's time.
		if err := root.MkdirAll(m.base, 0o700); err != nil {
			return nil, err
		}
		out.entries = append(out.entries, archive.FileEntry{Path: m.base, Type: "dir", Mode: 0o750, UID: uid, GID: gid, MTime: x.mtime})
	}
	// Directories that entries implied without an entry of their own.
	for _, e := range out.entries {
		for d := path.Dir(e.Path); d != "." && d != m.base && d != "/"; d = path.Dir(d) {
			if _, ok := seen[d]; ok {
				continue
			}
			seen[d] = len(out.entries)
			out.entries = append(out.entries, archive.FileEntry{Path: d, Type: "dir", Mode: 0o750, UID: uid, GID: gid, MTime: x.mtime})
		}
	}
	byDepth := append([]archive.FileEntry(nil), out.entries...)
	sort.Slice(byDepth, func(i, j int) bool { return byDepth[i].Path > byDepth[j].Path })
	for _, e := range byDepth {
		if e.Type == "hardlink" {
			continue
		}
		if err := softdelete.ApplyMeta(root, filepath.FromSlash(e.Path), e); err != nil {
			return nil, err
		}
	}
	// The files' content was written from the stream as it was read
	// and checked; their sizes were checked after each write. What the
	// comparison adds is the tree's shape and metadata.
	if why := softdelete.CompareTreeShape(root, filepath.FromSlash, m.base, out.entries); why != "" {
		return nil, &BackupContentError{Backup: x.backupFile, Reason: "staged in " + x.top + " it does not match the backup's own listing: " + why}
	}
	// One sync of the staging's filesystem (data, inodes, directories)
	// before the caller's rename: the writeback of each file was started
	// as it was written, so this waits for the tail only.
	if err := syncFS(x.top); err != nil {
		return nil, &PlaceError{Backup: x.backupFile, Reason: fmt.Sprintf("sync the staging filesystem of %s: %v", x.top, err), Err: err}
	}
	return out, nil
}

// syncFS syncs the filesystem holding dir.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}

// writeStaged writes one entry; a hard link is made inside the root.
func writeStaged(root *os.Root, rel string, hdr *tar.Header, open func() (io.ReadCloser, error)) error {
	if hdr.Typeflag == tar.TypeLink {
		if err := root.MkdirAll(filepath.Dir(filepath.FromSlash(rel)), 0o700); err != nil {
			return err
		}
		return root.Link(filepath.FromSlash(hdr.Linkname), filepath.FromSlash(rel))
	}
	if hdr.Typeflag == tar.TypeReg {
		err := softdelete.WriteTarEntryUnsynced(root, filepath.FromSlash(rel), hdr, open)
		if err != nil {
			return err
		}
		fi, err := root.Lstat(filepath.FromSlash(rel))
		if err != nil {
			return err
		}
		if fi.Size() != hdr.Size {
			return fmt.Errorf("%d bytes read, the entry says %d", fi.Size(), hdr.Size)
		}
		return nil
	}
	return softdelete.WriteTarEntry(root, filepath.FromSlash(rel), hdr, open)
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

// goBits turns tar's setuid, setgid and sticky bits into Go's.
func goBits(mode int64) fs.FileMode {
	var m fs.FileMode
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// ownerOf returns the owner of dir (0:0 when it cannot be read).
func ownerOf(dir string) (int, int) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}

// freeBytes is the space an unprivileged writer has left on dir's
// filesystem.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
