package backup

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// guardAll runs a plain dump through the guard and returns what psql
// would have received and the refusal.
func guardAll(t *testing.T, sql string) (string, error) {
	t.Helper()
	r, refused := guardPlainSQL("db.sql", strings.NewReader(sql))
	out, err := io.ReadAll(r)
	if rerr := refused(); rerr != nil {
		return string(out), rerr
	}
	require.NoError(t, err)
	return string(out), nil
}

func TestGuardPlainSQL_PassesWhatPgDumpWrites(t *testing.T) {
	dump := "\\restrict abc\n--\n-- COPY x FROM stdin; in a comment\n--\nSET standard_conforming_strings = on;\n" +
		"CREATE FUNCTION f() RETURNS text AS $$ SELECT 'a\\b;' $$ LANGUAGE sql;\n" +
		"CREATE TABLE public.program (id int, body bytea, note text);\n" +
		"COPY public.program (id, body, note) FROM stdin;\n1\t\\\\xc4ca\t\\! not a command here\n\\.\n" +
		"ALTER TABLE ONLY public.program ADD CONSTRAINT p PRIMARY KEY (id);\n\\unrestrict abc\n"
	out, err := guardAll(t, dump)
	require.NoError(t, err)
	assert.Equal(t, dump, out, "a pg_dump plain dump passes whole")
}

func TestGuardPlainSQL_RefusesWhatReachesBeyondTheScratchDatabase(t *testing.T) {
	for name, sql := range map[string]string{
		"shell":              "SELECT 1;\n\\! rm -rf /\n",
		"connect":            "SELECT 1;\n\\connect other\n",
		"mid-line command":   "SELECT 1; \\o /etc/x\n",
		"drop database":      "DROP DATABASE live;\n",
		"split drop":         "DROP\nDATABASE\nlive;\n",
		"role":               "ALTER ROLE app SUPERUSER;\n",
		"copy program":       "DO $x$ BEGIN EXECUTE 'COPY t FROM PROGRAM ''id'''; END $x$;\n",
		"dblink":             "CREATE EXTENSION dblink;\n",
		"server file":        "SELECT pg_read_file('/etc/shadow');\n",
		"comment then shell": "-- COPY t FROM stdin;\n\\! id\n",
	} {
		t.Run(name, func(t *testing.T) {
			out, err := guardAll(t, sql)
			var unsafe *UnsafePlainDumpError
			require.True(t, errors.As(err, &unsafe), "refused: %v", err)
			assert.NotContains(t, out, "rm -rf", "the refused line never reaches psql")
			assert.NotContains(t, out, "DATABASE", "the refused statement never reaches psql")
			assert.NotContains(t, out, "\\!", "the refused command never reaches psql")
			assert.Positive(t, unsafe.Line)
		})
	}
}
