package encrypted_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/encrypted"
)

func identity(t *testing.T) *age.X25519Identity {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// What Create writes is ciphertext in the store, comes back plain through
// Open with a matching identity (also the ephemeral one alone), is an
// *EncryptedError without one or with another, and fails to decrypt
// when one byte of it changes; Put's small objects stay plain.
func TestEncrypted_RoundTripAndRefusals(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "archives")
	file, _ := store.NewFile(dir)
	operator := identity(t)
	keys, err := encrypted.Ephemeral(encrypted.Keys{Recipients: []age.Recipient{operator.Recipient()}})
	if err != nil {
		t.Fatal(err)
	}
	st := encrypted.Wrap(file, keys)
	if _, ok := st.(store.Local); !ok {
		t.Fatal("an encrypted directory store is no longer a directory store")
	}
	plain := bytes.Repeat([]byte("secret instance data "), 10000) // several age chunks
	w, err := st.Create(ctx, "acme/a.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "acme/a.tar.zst.sha256", []byte("digest")); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "acme", "a.tar.zst"))
	if bytes.Contains(raw, []byte("secret instance data")) || !bytes.HasPrefix(raw, []byte("age-encryption.org/v1")) {
		t.Fatal("the store holds plaintext")
	}
	read := func(st store.Store, key string) ([]byte, error) {
		rc, err := st.Open(ctx, key)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	if got, err := read(st, "acme/a.tar.zst"); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("read back with the ephemeral identity: %v", err)
	}
	if got, err := read(st, "acme/a.tar.zst.sha256"); err != nil || string(got) != "digest" {
		t.Fatalf("a plain object: %q %v", got, err)
	}
	restorer := encrypted.Wrap(file, encrypted.Keys{Identities: []age.Identity{operator}})
	if got, err := read(restorer, "acme/a.tar.zst"); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("read back with the operator's identity: %v", err)
	}
	var ee *encrypted.EncryptedError
	if _, err := read(encrypted.Wrap(file, encrypted.Keys{}), "acme/a.tar.zst"); !errors.As(err, &ee) || !strings.Contains(ee.Hint(), "decrypt_identity_file") {
		t.Fatalf("without an identity: %v", err)
	}
	if _, err := read(encrypted.Wrap(file, encrypted.Keys{Identities: []age.Identity{identity(t)}}), "acme/a.tar.zst"); !errors.As(err, &ee) {
		t.Fatalf("with another identity: %v", err)
	}
	if _, err := read(file, "acme/a.tar.zst"); err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 1
	os.WriteFile(filepath.Join(dir, "acme", "a.tar.zst"), raw, 0o600)
	if _, err := read(restorer, "acme/a.tar.zst"); err == nil {
		t.Fatal("a changed byte of ciphertext decrypted")
	}
}

// Recipients and identity files: bad ones are refused, and an identity
// file's content never appears in the error.
func TestEncrypted_ParseRefusals(t *testing.T) {
	if _, err := encrypted.ParseRecipients([]string{identity(t).Recipient().String(), "age1nope"}); err == nil || !strings.Contains(err.Error(), "encrypt_to[1]") {
		t.Fatalf("bad recipient: %v", err)
	}
	f := filepath.Join(t.TempDir(), "key")
	os.WriteFile(f, []byte("AGE-SECRET-KEY-NOTAKEYBUTSECRETLOOKING\n"), 0o600)
	if _, err := encrypted.ReadIdentities(f); err == nil || strings.Contains(err.Error(), "NOTAKEY") {
		t.Fatalf("bad identity file: %v", err)
	}
	// Post-quantum recipients get a post-quantum ephemeral one (age
	// refuses to mix them).
	pq, _ := age.GenerateHybridIdentity()
	keys, err := encrypted.Ephemeral(encrypted.Keys{Recipients: []age.Recipient{pq.Recipient()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := age.Encrypt(io.Discard, keys.Recipients...); err != nil {
		t.Fatalf("encrypt to a post-quantum recipient and the ephemeral one: %v", err)
	}
}
