package pgdump_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// TestPlainRows_CountsTheRowsOfEachTable: the rows of a real plain dump,
// per table, whatever the values and names hold; a cut COPY is an error.
func TestPlainRows_CountsTheRowsOfEachTable(t *testing.T) {
	f := fleettest.New(t, true, "acme")
	db := f.Database("acme")
	psql := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", `CREATE SCHEMA "odd ""schema";
		CREATE TABLE "odd ""schema"."T x" (v text);
		INSERT INTO "odd ""schema"."T x" VALUES (E'a\nb'), (E'\\.'), (E'\n\n'), ('COPY public.x (v) FROM stdin;'), (NULL), ('');
		CREATE TABLE public.empty (i int);
		CREATE TABLE public.wide (`+strings.Repeat("c_ab", 1)+`0 int`+func() string {
		var b strings.Builder
		for i := 1; i < 400; i++ {
			b.WriteString(", column_with_a_long_name_" + strings.Repeat("x", 20) + string(rune('a'+i%26)) + "_" + strings.Repeat("y", i%7) + "_" + string(rune('0'+i%10)) + "_" + string(rune('a'+i/26)) + " int")
		}
		return b.String()
	}()+`);
		INSERT INTO public.wide (c_ab0) SELECT generate_series(1, 3);`)
	psql.Env = f.PG.Env()
	out, err := psql.CombinedOutput()
	require.NoError(t, err, string(out))
	dump := exec.Command("pg_dump", "--format=plain", "--dbname="+db)
	dump.Env = f.PG.Env()
	data, err := dump.Output()
	require.NoError(t, err)
	defer pgdump.SetPlainReadSize(64)()
	rows, err := pgdump.PlainRows(strings.NewReader(string(data)))
	require.NoError(t, err)
	require.Equal(t, int64(6), rows[pgdump.Table{Schema: `odd "schema`, Name: "T x"}])
	require.Contains(t, rows, pgdump.Table{Schema: "public", Name: "empty"})
	require.Equal(t, int64(0), rows[pgdump.Table{Schema: "public", Name: "empty"}])
	require.Equal(t, int64(3), rows[pgdump.Table{Schema: "public", Name: "wide"}], "a COPY line longer than the read buffer")

	cut := string(data)[:strings.Index(string(data), "\n\\.\n")+1]
	_, err = pgdump.PlainRows(strings.NewReader(cut))
	require.Error(t, err, "a COPY without its end")
}
