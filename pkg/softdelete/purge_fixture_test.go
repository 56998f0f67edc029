package softdelete

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
)

// fataler is what BareArchive needs of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

// BareArchive writes at path a real, verifiable archive of deletion id of
// instance (app), of nothing (no component: a manifest and a runbook),
// with its .sha256 sidecar, and returns its sha256. Its manifest says
// deleted at deleted and, unless purgeAfter is nil (an archive of a
// release before the manifest recorded retention), purge_after
// purgeAfter. Purge's tests of keep_last and retention use it where the
// content does not matter and a soft delete per archive would be slow;
// the manifest is written as JSON keys, as an archive on disk holds it.
func BareArchive(t fataler, path, id, instance, app string, deleted time.Time, purgeAfter *time.Time) string {
	t.Helper()
	m := map[string]any{"format": archive.Format, "id": id, "instance": instance, "app": app,
		"components": []any{}, "files": []any{}, "databases": []any{}, "tool_version": "test",
		"created_at": deleted.UTC(), "retention_records": true}
	if purgeAfter != nil {
		m["purge_after"] = purgeAfter.UTC()
		m["retention_days"] = int(purgeAfter.Sub(deleted) / (24 * time.Hour))
	}
	manifest, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, e := range []struct {
		name string
		data []byte
	}{{"manifest.json", manifest}, {"RESTORE.md", []byte("# restore by hand\n")}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(e.data)), ModTime: deleted, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	digest := hex.EncodeToString(sum[:])
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+sidecar.Suffix, []byte(sidecar.Format(path, digest)), 0o600); err != nil {
		t.Fatal(err)
	}
	return digest
}
