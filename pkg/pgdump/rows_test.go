package pgdump_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// TestVerify_CountsTheRowsOfEachTable: Verify's row counts are the rows
// each table holds, whatever the values hold (newlines, backslashes, a
// line that looks like COPY's end marker), compressed (gzip, the only
// compression of PostgreSQL 15's custom format) or not, and a
// table without rows counts zero.
func TestVerify_CountsTheRowsOfEachTable(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	db := f.Database("acme")
	psql := func(sql string) {
		t.Helper()
		cmd := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql)
		cmd.Env = f.PG.Env()
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
	}
	psql(`CREATE SCHEMA "odd schema";
		CREATE TABLE "odd schema"."T x" (v text);
		INSERT INTO "odd schema"."T x" VALUES (E'a\nb'), (E'\\.'), (E'\n\n'), (E'back\\slash'), (E'\r\n'), (NULL), ('');
		CREATE TABLE public.empty (i int);
		CREATE TABLE public.parent (i int);
		CREATE TABLE public.child () INHERITS (public.parent);
		INSERT INTO public.parent SELECT generate_series(1, 3);
		INSERT INTO public.child SELECT generate_series(1, 5000);`)
	for _, comp := range []string{"6", "0"} {
		t.Run(comp, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "acme.dump")
			cmd := exec.Command("pg_dump", "--format=custom", "--compress="+comp, "--file="+file, "--dbname="+db)
			cmd.Env = f.PG.Env()
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, string(out))
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			sum, err := pgdump.Verify(bytes.NewReader(data))
			require.NoError(t, err)
			require.Equal(t, int64(7), sum.Rows[pgdump.Table{Schema: "odd schema", Name: "T x"}], "rows of %s", comp)
			require.Equal(t, int64(0), sum.Rows[pgdump.Table{Schema: "public", Name: "empty"}])
			require.Contains(t, sum.Rows, pgdump.Table{Schema: "public", Name: "empty"})
			require.Equal(t, int64(3), sum.Rows[pgdump.Table{Schema: "public", Name: "parent"}], "a parent's own rows, not its children's")
			require.Equal(t, int64(5000), sum.Rows[pgdump.Table{Schema: "public", Name: "child"}])
			framed, err := pgdump.VerifyFraming(bytes.NewReader(data))
			require.NoError(t, err)
			require.Nil(t, framed.Rows, "VerifyFraming inflates a part only: it counts nothing")
		})
	}
}
