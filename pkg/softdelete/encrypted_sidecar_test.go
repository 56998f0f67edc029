package softdelete_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/encrypted"
)

// TestEncrypted_SidecarOverCiphertext: the .sha256 sidecar of an
// encrypted archive is over the ciphertext, so sha256sum -c checks it
// where it lies without the key, and the tombstone records the same
// digest. A sidecar that matches neither the ciphertext nor the
// plaintext is refused before anything is written; an archive of an
// earlier release, whose sidecar and tombstone are over the plaintext,
// still restores (age authenticated every chunk of what was decrypted).
func TestEncrypted_SidecarOverCiphertext(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	before := f.Snapshot(t, "acme")
	operator, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	keys, err := encrypted.Ephemeral(encrypted.Keys{Recipients: []age.Recipient{operator.Recipient()}})
	require.NoError(t, err)
	files, err := store.NewFile(archives)
	require.NoError(t, err)
	req := request(f, archives, "acme")
	req.Store = encrypted.Wrap(files, keys)
	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)

	path := res.Archive.Path
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(raw), "age-encryption.org/v1\n"), "ciphertext in the store")
	stored := sha256.Sum256(raw)
	assert.Equal(t, hex.EncodeToString(stored[:]), res.Archive.SHA256)
	out, err := exec.Command("/bin/sh", "-c", "cd \"$1\" && sha256sum -c \"$2\"", "sh", filepath.Dir(path), filepath.Base(path)+".sha256").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, filepath.Base(path)+": OK\n", string(out), "checked without the key")
	tsRaw, err := os.ReadFile(res.Tombstone.Path)
	require.NoError(t, err)
	var ts map[string]any
	require.NoError(t, json.Unmarshal(tsRaw, &ts))
	assert.Equal(t, res.Archive.SHA256, ts["archive_sha256"])

	purgeQuarantine(t, f, res)
	restore := func() (*softdelete.RestoreResult, error) {
		return softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Source: softdelete.SourceArchive,
			Store: encrypted.Wrap(files, encrypted.Keys{Identities: []age.Identity{operator}}), Options: f.Options()})
	}
	sidecarFile := path + ".sha256"

	// A sidecar over something else: refused, nothing written.
	other := sha256.Sum256([]byte("something else"))
	require.NoError(t, os.WriteFile(sidecarFile, []byte(hex.EncodeToString(other[:])+"  "+filepath.Base(path)+"\n"), 0o600))
	_, err = restore()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not match its sidecar")
	_, err = os.Lstat(f.Path("data", "acme"))
	assert.True(t, os.IsNotExist(err), "a refused restore wrote data: %v", err)

	// An archive of an earlier release: sidecar and tombstone over the
	// plaintext.
	dec, err := age.Decrypt(strings.NewReader(string(raw)), operator)
	require.NoError(t, err)
	h := sha256.New()
	_, err = io.Copy(h, dec)
	require.NoError(t, err)
	plain := hex.EncodeToString(h.Sum(nil))
	require.NotEqual(t, plain, res.Archive.SHA256)
	require.NoError(t, os.WriteFile(sidecarFile, []byte(plain+"  "+filepath.Base(path)+"\n"), 0o600))
	require.NoError(t, os.WriteFile(res.Tombstone.Path, []byte(strings.ReplaceAll(string(tsRaw), res.Archive.SHA256, plain)), 0o600))
	_, err = restore()
	require.NoError(t, err)
	assert.Equal(t, before, f.Snapshot(t, "acme"))
}
