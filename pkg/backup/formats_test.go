package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// TestVerify_TarAndZip checks a plain tar (made by GNU tar) and a zip
// backup, whole and damaged: a truncated tar and a zip whose entry no
// longer matches its CRC.
func TestVerify_TarAndZip(t *testing.T) {
	cases := []struct {
		format, file string
		damage       func([]byte) []byte
	}{
		{"tar", "small.tar", func(b []byte) []byte { return b[:700] }},
		{"zip", "small.zip", func(b []byte) []byte {
			// Flip a byte of the compressed entry data (after the
			// 30-byte local header and the name "d/a.txt").
			b[30+len("d/a.txt")+3] ^= 0xff
			return b
		}},
	}
	for _, c := range cases {
		t.Run(c.format, func(t *testing.T) {
			f := fleettest.New(t, false, "acme")
			dir := filepath.Join(f.Root, "backups", "acme")
			require.NoError(t, os.MkdirAll(dir, 0o755))
			data, err := os.ReadFile(filepath.Join("testdata", c.file))
			require.NoError(t, err)
			path := filepath.Join(dir, "config-1."+c.format)
			require.NoError(t, os.WriteFile(path, data, 0o644))
			yaml := fleettest.LayoutYAML(f.Root, f.App, false) + "backups:\n  - component: config\n    path: " + f.Root + "/backups/{name}/config-*." + c.format + "\n    format: " + c.format + "\n"
			l, err := instance.ParseLayout([]byte(yaml), "formats.yml")
			require.NoError(t, err)
			run := func() backup.CheckResult {
				rep, err := backup.Verify(context.Background(), l, backup.Options{Now: time.Now(), Discovery: f.Options()})
				require.NoError(t, err)
				return check(t, rep, "acme", "config", backup.CheckFormat)
			}
			assert.Equal(t, backup.StatusOK, run().Status)
			require.NoError(t, os.WriteFile(path, c.damage(data), 0o644))
			got := run()
			assert.Equal(t, backup.StatusFailed, got.Status, got.Detail)
			assert.IsType(t, &backup.FormatError{}, got.Finding)
		})
	}
}
