package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
	"github.com/fleetsafe/fleetsafe/pkg/units"
)

// Backups in object storage: a rule path s3://bucket/prefix/{name}/db-*.dump
// names objects the way a local rule names files. Every check is the
// local one, fed from the object instead of the file:
//   - listing: ListObjects with the literal prefix of the key glob (the
//     text before its first wildcard), each key then matched against the
//     whole glob with filepath.Match, so '*' never crosses a '/' and the
//     ownership rules ({name} candidates, known names, ambiguity) are
//     those of paths, element by element;
//   - newest, age: the object's LastModified, as a file's mtime;
//   - size, shrink: the object's size;
//   - checksum: the sidecar object beside it (key + ".sha256");
//   - format: the object read by one streaming GET (a zip by ranged GETs,
//     its directory being at its end), never copied whole to this host,
//     but for format sqlite (SQLite opens a file by name and reads pages:
//     a temporary copy, removed after the check);
//   - restores (restore_test, drills, instance_restore): the object is
//     copied to a file of a private temporary directory first (pg_restore,
//     the tree extraction and SQLite read a file), removed after.
//
// No credential is part of a path, a finding or an error: errors of the
// S3 client are passed through redact.

// isRemote reports whether a backup path names an object.
func isRemote(path string) bool { return strings.HasPrefix(path, instance.RemoteRulePrefix) }

// splitRemote splits s3://bucket/key.
func splitRemote(path string) (bucket, key string) {
	rest := strings.TrimPrefix(path, instance.RemoteRulePrefix)
	bucket, key, _ = strings.Cut(rest, "/")
	return bucket, key
}

// remotes opens the buckets the rules name, each once, with one set of
// settings (the module's s3_* parameters, else the AWS_* variables).
type remotes struct {
	set     s3store.Settings
	mu      sync.Mutex
	buckets map[string]*remoteBucket
}

type remoteBucket struct {
	st  *s3store.Store
	err error
}

func newRemotes(s s3store.Settings) *remotes {
	return &remotes{set: s.FromEnv(), buckets: map[string]*remoteBucket{}}
}

// bucket opens (once) the bucket of name.
func (r *remotes) bucket(ctx context.Context, name string) (*s3store.Store, error) {
	if r == nil {
		return nil, errors.New("object storage backups read without S3 settings")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.buckets[name]; ok {
		return b.st, b.err
	}
	st, err := s3store.OpenURL(ctx, &url.URL{Scheme: "s3", Host: name}, r.set)
	if err != nil {
		err = r.redact(err)
	}
	r.buckets[name] = &remoteBucket{st: st, err: err}
	return st, err
}

// redact removes the credentials from an error's text, whatever the S3
// client or server put in it.
func (r *remotes) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, secret := range []string{r.set.SecretKey, r.set.SessionToken, r.set.AccessKey} {
		if len(secret) >= 4 {
			msg = strings.ReplaceAll(msg, secret, "[redacted]")
		}
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// open reads the object of path, streaming.
func (r *remotes) open(ctx context.Context, path string) (io.ReadCloser, error) {
	bucket, key := splitRemote(path)
	st, err := r.bucket(ctx, bucket)
	if err != nil {
		return nil, err
	}
	rc, err := st.GetObject(ctx, key)
	return rc, r.redact(err)
}

// readerAt opens the object of path for ranged reads.
func (r *remotes) readerAt(ctx context.Context, path string) (s3store.ReadAtCloser, int64, error) {
	bucket, key := splitRemote(path)
	st, err := r.bucket(ctx, bucket)
	if err != nil {
		return nil, 0, err
	}
	ra, size, err := st.ObjectReaderAt(ctx, key)
	return ra, size, r.redact(err)
}

// readSidecar returns the digest in the sidecar object of path
// (key + ".sha256", as sha256sum writes it).
func (r *remotes) readSidecar(ctx context.Context, path string) (string, error) {
	rc, err := r.open(ctx, path+sidecar.Suffix)
	if err != nil {
		return "", fmt.Errorf("no readable sidecar %s%s: %w", path, sidecar.Suffix, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return "", fmt.Errorf("sidecar %s%s: %w", path, sidecar.Suffix, r.redact(err))
	}
	return sidecar.Parse(data, path)
}

// literalPrefix returns the text of a glob before its first wildcard,
// unescaped.
func literalPrefix(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*', '?', '[':
			return b.String()
		case '\\':
			if i+1 < len(glob) {
				i++
				b.WriteByte(glob[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// glob lists the objects matched by pattern, s3://bucket/key-glob, as
// globAll lists files: a listing that fails is reported with the
// "directory" it was for (the bucket and the literal prefix), never taken
// for an empty one. A bucket that does not exist is such a failure: a
// rule naming it is wrong, not a rule with no backup yet.
func (r *remotes) glob(ctx context.Context, pattern string) ([]backupFile, []dirError) {
	bucket, keyGlob := splitRemote(pattern)
	prefix := literalPrefix(keyGlob)
	dir := instance.RemoteRulePrefix + bucket
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir += "/" + prefix[:i]
	}
	st, err := r.bucket(ctx, bucket)
	if err != nil {
		return nil, []dirError{{Dir: dir, Err: err}}
	}
	objs, err := st.ListObjects(ctx, prefix)
	if err != nil {
		return nil, []dirError{{Dir: dir, Err: r.redact(err)}}
	}
	var out []backupFile
	for _, o := range objs {
		if ok, _ := filepath.Match(keyGlob, o.Key); !ok {
			continue
		}
		out = append(out, backupFile{path: instance.RemoteRulePrefix + bucket + "/" + o.Key, size: o.Size, mtime: o.ModTime, rem: r})
	}
	return out, nil
}

// download copies the object of path into a file of a private (0700)
// temporary directory under dir (the system's temporary directory when
// ""), for the readers that need a file (pg_restore, the tree extraction,
// SQLite, which opens a file by its name); remove closes it and removes
// the directory.
//
// The object's size is checked against the free space of dir first: a
// copy that cannot fit is refused before a byte is written, with the size
// needed and the directory (TMPDIR) named, and so is a copy that runs out
// of room (the object grew, or something else filled the disk).
func (r *remotes) download(ctx context.Context, path, dir string) (f *os.File, remove func(), err error) {
	scratch := dir
	if scratch == "" {
		scratch = os.TempDir()
	}
	ra, size, err := r.readerAt(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	ra.Close()
	if free, ok := freeSpace(scratch); ok && free < size+scratchMargin {
		return nil, nil, &ScratchSpaceError{Object: path, Size: size, Dir: scratch, Free: free, TMPDIR: dir == ""}
	}
	rc, err := r.open(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	tmp, err := os.MkdirTemp(dir, ".fleetsafe-s3-backup-*")
	if err != nil {
		return nil, nil, fmt.Errorf("scratch copy of %s: %w", path, err)
	}
	f, err = os.OpenFile(filepath.Join(tmp, "backup"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, nil, fmt.Errorf("scratch copy of %s: %w", path, err)
	}
	remove = func() {
		f.Close()
		os.RemoveAll(tmp)
	}
	if _, err := io.Copy(f, rc); err != nil {
		remove()
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			free, _ := freeSpace(scratch)
			return nil, nil, &ScratchSpaceError{Object: path, Size: size, Dir: scratch, Free: free, TMPDIR: dir == "", Err: err}
		}
		return nil, nil, fmt.Errorf("scratch copy of %s into %s: %w", path, tmp, r.redact(err))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		remove()
		return nil, nil, err
	}
	return f, remove, nil
}

// openContent opens a backup's content: the object when content names
// one, else the local file.
func openContent(ctx context.Context, rem *remotes, content string) (io.ReadCloser, error) {
	if isRemote(content) {
		return rem.open(ctx, content)
	}
	return os.Open(content)
}

// scratchMargin is the room kept free beside a scratch copy (the
// directory's own blocks, other writers).
const scratchMargin = 1 << 20

// freeSpace returns the bytes an unprivileged writer may still use in
// dir's filesystem.
func freeSpace(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}

// ScratchSpaceError is a backup object that must be copied to a local
// file to be read (pg_restore's parallel restore, a zip, SQLite, the
// checks and restores that read a file) and does not fit where the copy
// goes.
type ScratchSpaceError struct {
	Object string
	Size   int64
	Dir    string
	Free   int64
	// TMPDIR: Dir is the system's temporary directory (TMPDIR).
	TMPDIR bool
	Err    error
}

func (e *ScratchSpaceError) Error() string {
	where := e.Dir
	if e.TMPDIR {
		where += " (TMPDIR)"
	}
	s := fmt.Sprintf("%s must be copied to a local file to be read, which needs %s (%d bytes) free in %s; it has %s",
		e.Object, units.Bytes(e.Size), e.Size, where, units.Bytes(e.Free))
	if e.Err != nil {
		s += fmt.Sprintf(" (the copy ran out of room: %v; it was removed)", e.Err)
	}
	return s
}

func (e *ScratchSpaceError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *ScratchSpaceError) Hint() string {
	return fmt.Sprintf("set TMPDIR in the task's environment to a directory with at least %s free, or free space in %s; nothing was restored",
		units.Bytes(e.Size+scratchMargin), e.Dir)
}
