package backup

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
)

// TestPsqlFile_EarlyFailureDoesNotHang: psql stops at the first error
// (ON_ERROR_STOP) and leaves the rest of a large dump unread; the guard
// in front of it must not wait for ever to write the rest.
func TestPsqlFile_EarlyFailureDoesNotHang(t *testing.T) {
	pg := fleettest.RequirePG(t)
	file := filepath.Join(t.TempDir(), "db.sql")
	dump := "SELEKT 1;\n" + strings.Repeat("SELECT 1;\n", 1<<20)
	require.NoError(t, os.WriteFile(file, []byte(dump), 0o600))
	env := kind.Env{}.With(postgresql.Type, pg)
	fleettest.Deadline(t, 20*time.Second, func() {
		_, err := postgresql.Kind{}.TestRestore(context.Background(), env, kind.Backup{Format: "pg_plain", File: file,
			Plain: func() (io.Reader, func() error, error) { return plainSQL(file) }})
		require.Error(t, err)
		require.Contains(t, err.Error(), "SELEKT")
	})
}
