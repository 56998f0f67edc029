// Package encrypted wraps an archive store so that archives are encrypted
// with age (filippo.io/age) as they stream in, and decrypted as they are
// read back: the store (a bucket, a directory) holds only ciphertext.
//
// Objects written with Create (archives) are encrypted to the recipients;
// small objects written with Put (tombstones, sidecars) stay plain. Open
// decrypts an object that is an age file (it starts with age's header)
// with the identities, and passes any other object through; an age file
// without a matching identity is an *EncryptedError that says what to
// give.
//
// Soft delete must read the archive back before anything moves (verified
// means restorable), but holds no private key of the operator: Ephemeral
// adds a recipient whose private key lives only in that process's memory,
// for that read-back, and is never written anywhere. Once the process
// ends, only the operator's identities open the archive.
//
// The .sha256 sidecar and the tombstone's digest are over the ciphertext,
// the object as the store holds it, so that `sha256sum -c` checks a copy
// without the key: the writer of an encrypted archive hashes what it
// hands to the store (Seal), and Open hashes what it reads (RawSHA256)
// while it decrypts. The plaintext is authenticated by age itself (every
// 64 KiB chunk), so a changed byte fails the decryption, and its content
// is checked against the manifest inside, as for a plain archive.
package encrypted

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/fleetsafe/fleetsafe/pkg/asynchash"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

const magic = "age-encryption.org/v1"

// Keys are what a store encrypts to and decrypts with.
type Keys struct {
	Recipients []age.Recipient
	Identities []age.Identity
}

// ParseRecipients parses age recipients (age1…, age1pq…), one per
// element; a blank one or a comment is refused, naming it.
func ParseRecipients(list []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for i, s := range list {
		s = strings.TrimSpace(s)
		if s == "" || strings.HasPrefix(s, "#") {
			return nil, fmt.Errorf("encrypt_to[%d]: %q is not an age recipient (age1...)", i, s)
		}
		rs, err := age.ParseRecipients(strings.NewReader(s))
		if err != nil || len(rs) != 1 {
			return nil, fmt.Errorf("encrypt_to[%d]: %q is not an age recipient (age1...): %v", i, s, err)
		}
		out = append(out, rs[0])
	}
	return out, nil
}

// ReadIdentities reads an age identity file (AGE-SECRET-KEY-… lines, as
// age-keygen writes them). Its content never appears in an error.
func ReadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("decrypt_identity_file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		// age's parse errors may quote the line: a secret key.
		return nil, fmt.Errorf("decrypt_identity_file %s: not an age identity file (AGE-SECRET-KEY-... lines, as age-keygen writes them)", path)
	}
	return ids, nil
}

// Ephemeral adds to keys a recipient, and its identity, that exist only
// in this process (of the same kind as the recipients: age refuses to mix
// post-quantum and classic ones).
func Ephemeral(keys Keys) (Keys, error) {
	pq := false
	for _, r := range keys.Recipients {
		if _, ok := r.(*age.HybridRecipient); ok {
			pq = true
		}
	}
	if pq {
		id, err := age.GenerateHybridIdentity()
		if err != nil {
			return keys, err
		}
		keys.Recipients = append(keys.Recipients, id.Recipient())
		keys.Identities = append(keys.Identities, id)
		return keys, nil
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return keys, err
	}
	keys.Recipients = append(keys.Recipients, id.Recipient())
	keys.Identities = append(keys.Identities, id)
	return keys, nil
}

// EncryptedError is an encrypted archive opened without an identity that
// matches it.
type EncryptedError struct {
	Location string
	Cause    error
}

func (e *EncryptedError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s is encrypted with age and no identity given opens it: %v", e.Location, e.Cause)
	}
	return fmt.Sprintf("%s is encrypted with age and no identity was given", e.Location)
}

func (e *EncryptedError) Unwrap() error { return e.Cause }

// Hint says what to give.
func (e *EncryptedError) Hint() string {
	return "give decrypt_identity_file: the age identity file of one of the recipients the archive was encrypted to (encrypt_to)"
}

// Store is a store whose archives are encrypted.
type Store struct {
	store.Store
	keys Keys
}

var _ store.Versioner = (*Store)(nil)

// Wrap returns st with keys. A directory store stays one (store.Local).
func Wrap(st store.Store, keys Keys) store.Store {
	e := &Store{Store: st, keys: keys}
	if l, ok := st.(store.Local); ok {
		return &Local{Store: e, local: l}
	}
	return e
}

// Create starts an archive encrypted to the recipients as it is written;
// without recipients it is written plain.
func (s *Store) Create(ctx context.Context, key string) (store.Writer, error) {
	w, err := s.Store.Create(ctx, key)
	if err != nil || len(s.keys.Recipients) == 0 {
		return w, err
	}
	sum := asynchash.New()
	enc, err := age.Encrypt(io.MultiWriter(w, sum), s.keys.Recipients...)
	if err != nil {
		sum.Close()
		w.Abort()
		return nil, fmt.Errorf("encrypt %s: %w", s.Location(key), err)
	}
	return &writer{inner: w, enc: enc, sum: sum, pipe: newAsyncWriter(enc)}, nil
}

// writer encrypts on a goroutine of its own (pipe): Write only queues a
// copy; age encrypts, and the inner writer stores and hashes, while the
// caller writes on. An error of either comes back from a later Write, or
// from Seal or Commit.
type writer struct {
	inner  store.Writer
	enc    io.WriteCloser
	sum    *asynchash.Hash // of the ciphertext handed to inner
	pipe   *asyncWriter    // to enc
	sealed bool
	err    error // of Seal
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.pipe.Write(p)
	if err != nil {
		return n, fmt.Errorf("encrypt: %w", err)
	}
	return n, nil
}

// Seal writes age's last chunk and returns the sha256 (hex) of the whole
// ciphertext, the object as the store will hold it: what the .sha256
// sidecar records. No write follows; Commit then commits the object.
func (w *writer) Seal() (string, error) {
	if !w.sealed {
		w.sealed = true
		if err := w.pipe.Close(); err != nil {
			w.err = fmt.Errorf("encrypt: %w", err)
		} else if err := w.enc.Close(); err != nil {
			w.err = fmt.Errorf("encrypt: %w", err)
		}
	}
	if w.err != nil {
		return "", w.err
	}
	return w.sum.Sum(), nil
}

// Commit writes age's last chunk (unless Seal did), then commits the
// object.
func (w *writer) Commit(ctx context.Context) error {
	if _, err := w.Seal(); err != nil {
		w.Abort()
		return err
	}
	return w.inner.Commit(ctx)
}

func (w *writer) Abort() error {
	w.pipe.abandon()
	w.sum.Close()
	return w.inner.Abort()
}

// Open decrypts an age file, and passes any other object through.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.decrypt(rc, key)
}

// Versions passes to the store's, when it keeps versions (none
// otherwise).
func (s *Store) Versions(ctx context.Context, key string) ([]store.Version, error) {
	if v, ok := s.Store.(store.Versioner); ok {
		return v.Versions(ctx, key)
	}
	return nil, nil
}

// OpenVersion reads one version of key, decrypted as Open does.
func (s *Store) OpenVersion(ctx context.Context, key, id string) (io.ReadCloser, error) {
	v, ok := s.Store.(store.Versioner)
	if !ok {
		return nil, fmt.Errorf("open version %s of %s: %w (this store keeps no versions)", id, s.Location(key), store.ErrNotExist)
	}
	rc, err := v.OpenVersion(ctx, key, id)
	if err != nil {
		return nil, err
	}
	return s.decrypt(rc, key)
}

// decrypt reads rc, the object under key, decrypted when it is an age
// file.
func (s *Store) decrypt(rc io.ReadCloser, key string) (io.ReadCloser, error) {
	// The stored bytes are hashed only for an age file (a plain one is
	// hashed by its reader, as without this store).
	tap := &switchedHash{}
	br := bufio.NewReaderSize(io.TeeReader(rc, tap), 64<<10)
	head, _ := br.Peek(len(magic))
	if string(head) != magic {
		return readCloser{br, rc}, nil
	}
	sum := asynchash.New()
	seen, _ := br.Peek(br.Buffered()) // every byte read from rc so far
	sum.Write(seen)
	tap.h = sum
	if len(s.keys.Identities) == 0 {
		sum.Close()
		rc.Close()
		return nil, &EncryptedError{Location: s.Location(key)}
	}
	dec, err := age.Decrypt(br, s.keys.Identities...)
	if err != nil {
		sum.Close()
		rc.Close()
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, &EncryptedError{Location: s.Location(key), Cause: errors.New("none of the identities given is a recipient of it")}
		}
		return nil, fmt.Errorf("decrypt %s: %w", s.Location(key), err)
	}
	return &decrypted{ra: newReadAhead(dec, rc), raw: br, sum: sum}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// switchedHash passes writes to h once it is set.
type switchedHash struct{ h io.Writer }

func (s *switchedHash) Write(p []byte) (int, error) {
	if s.h != nil {
		s.h.Write(p)
	}
	return len(p), nil
}

// decrypted is an age file read decrypted, its stored bytes hashed as
// they are read. Reading and decrypting run on a goroutine of their own
// (ra), a few chunks ahead of Read, so that age's decryption overlaps
// the reader's own work.
type decrypted struct {
	ra  *readAhead // of age's plaintext
	raw io.Reader  // the ciphertext, through sum; read by ra's goroutine until its end
	sum *asynchash.Hash
}

func (d *decrypted) Read(p []byte) (int, error) { return d.ra.Read(p) }

// Close closes the object, ends the reading goroutine and stops the
// hashing.
func (d *decrypted) Close() error {
	err := d.ra.Close()
	d.sum.Close()
	return err
}

// RawSHA256 reads what is left of the stored object (after age's last
// chunk: nothing, in an archive fleetsafe wrote) and returns the sha256
// (hex) of the whole object as stored, the ciphertext: what the .sha256
// sidecar of an encrypted archive records. Call it once the plaintext
// was read to its end (what is left of it is read here, so that the
// digest is of the whole object in any case).
func (d *decrypted) RawSHA256() (string, error) {
	if _, err := io.Copy(io.Discard, d.ra); err != nil {
		return "", err
	}
	// The plaintext's end was delivered: the goroutine no longer reads
	// raw.
	if _, err := io.Copy(io.Discard, d.raw); err != nil {
		return "", err
	}
	return d.sum.Sum(), nil
}

// The optional interfaces of the stores, passed through.

// Tidy passes to the store's Tidy, when it has one.
func (s *Store) Tidy(folder string) {
	if t, ok := s.Store.(interface{ Tidy(string) }); ok {
		t.Tidy(folder)
	}
}

// LockHolder passes to the store's, when it has one.
func (s *Store) LockHolder(name string) (int, string, bool) {
	if li, ok := s.Store.(store.LockInspector); ok {
		return li.LockHolder(name)
	}
	return 0, "", false
}

var errNoLock = errors.New("this store cannot lock objects (S3 Object Lock)")

// CheckObjectLock passes to the store's, when it has one.
func (s *Store) CheckObjectLock(ctx context.Context) error {
	if r, ok := s.Store.(store.Retainer); ok {
		return r.CheckObjectLock(ctx)
	}
	return fmt.Errorf("%s: %w", s.Location(""), errNoLock)
}

// Retain passes to the store's, when it has one.
func (s *Store) Retain(ctx context.Context, key, mode string, until time.Time, legalHold bool) error {
	if r, ok := s.Store.(store.Retainer); ok {
		return r.Retain(ctx, key, mode, until, legalHold)
	}
	return fmt.Errorf("%s: %w", s.Location(key), errNoLock)
}

// Retention passes to the store's, when it has one.
func (s *Store) Retention(ctx context.Context, key string) (store.Retention, error) {
	if r, ok := s.Store.(store.Retainer); ok {
		return r.Retention(ctx, key)
	}
	return store.Retention{}, nil
}

// Local is an encrypted directory store: still a directory of this host.
type Local struct {
	*Store
	local store.Local
}

var _ store.Local = (*Local)(nil)

// Folders passes through.
func (l *Local) Folders() ([]store.Folder, error) { return l.local.Folders() }

// Prepare passes through.
func (l *Local) Prepare(folder string) (func(), error) { return l.local.Prepare(folder) }

// Tidy passes through.
func (l *Local) Tidy(folder string) { l.local.Tidy(folder) }

// WorkDir passes through.
func (l *Local) WorkDir(folder, prefix string) (string, error) {
	return l.local.WorkDir(folder, prefix)
}

// Dir returns the directory, when the store has one.
func (l *Local) Dir() string {
	if d, ok := l.local.(interface{ Dir() string }); ok {
		return d.Dir()
	}
	return ""
}

// Encrypting reports whether archives created are encrypted (RESTORE.md
// then says how to decrypt them).
func (s *Store) Encrypting() bool { return len(s.keys.Recipients) > 0 }

// Endpoint passes to the store's, when it has one.
func (s *Store) Endpoint() string {
	if e, ok := s.Store.(interface{ Endpoint() string }); ok {
		return e.Endpoint()
	}
	return ""
}

// Checksum passes to the inner writer's: the store's checksum of the
// ciphertext it holds.
func (w *writer) Checksum() string {
	if c, ok := w.inner.(interface{ Checksum() string }); ok {
		return c.Checksum()
	}
	return ""
}
