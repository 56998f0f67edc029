package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// TestPsqlFile_EarlyFailureDoesNotHang: psql stops at the first error
// (ON_ERROR_STOP) and leaves the rest of a large dump unread; the guard
// in front of it must not wait for ever to write the rest.
func TestPsqlFile_EarlyFailureDoesNotHang(t *testing.T) {
	pg := fleettest.RequirePG(t)
	file := filepath.Join(t.TempDir(), "db.sql")
	dump := "SELEKT 1;\n" + strings.Repeat("SELECT 1;\n", 1<<20)
	require.NoError(t, os.WriteFile(file, []byte(dump), 0o600))
	fleettest.Deadline(t, 20*time.Second, func() {
		err := psqlFile(context.Background(), pg, "postgres", file)
		require.Error(t, err)
		require.Contains(t, err.Error(), "SELEKT")
	})
}
