package instance_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

const goodLayout = `app: tracim
name_pattern: '^[a-z0-9][a-z0-9-]{0,62}$'
components:
  - name: config
    type: dir
    path: /etc/tracim/{name}
  - name: data
    type: dir
    path: /srv/tracim/app-{name}/data
  - name: logs
    type: dir
    path: /var/log/tracim/{name}
    optional: true
    backup: false
  - name: service
    type: systemd_unit
    unit: tracim@{name}.service
    backup: false
  - name: database
    type: postgresql
    database: tracim_{name}
backups:
  - component: database
    path: /var/backups/tracim/{name}/db-*.dump
    format: pg_custom
    max_age: 26h
    min_size: 1KiB
    max_shrink: 50%
    checksum: sha256_sidecar
  - component: data
    path: /var/backups/tracim/{name}/data-*.tar.zst
    format: tar_zst
    max_age: 2d
`

// TestParseLayout_Owner reads a postgresql component's owner template,
// with and without {name}, and expands it per instance.
func TestParseLayout_Owner(t *testing.T) {
	for raw, want := range map[string]string{"tracim_{name}": "tracim_acme", "tracim": "tracim", "{name}": "acme", "{name}_owner": "acme_owner"} {
		y := strings.Replace(goodLayout, "    database: tracim_{name}\n", "    database: tracim_{name}\n    owner: '"+raw+"'\n", 1)
		l, err := instance.ParseLayout([]byte(y), "tracim.yml")
		require.NoError(t, err, raw)
		db, _ := l.Component("database")
		assert.Equal(t, raw, db.Owner)
		assert.Equal(t, want, db.OwnerFor("acme"), raw)
	}
	l, err := instance.ParseLayout([]byte(goodLayout), "tracim.yml")
	require.NoError(t, err)
	db, _ := l.Component("database")
	assert.Equal(t, "", db.OwnerFor("acme"), "no owner key: no owner")
}

func TestParseLayout_Good(t *testing.T) {
	l, err := instance.ParseLayout([]byte(goodLayout), "tracim.yml")
	require.NoError(t, err)
	assert.Equal(t, "tracim", l.App)
	require.Len(t, l.Components, 5)
	logs, _ := l.Component("logs")
	assert.True(t, logs.Optional)
	require.NotNil(t, logs.Backup)
	assert.False(t, *logs.Backup)
	cfg, _ := l.Component("config")
	assert.Nil(t, cfg.Backup)
	data, _ := l.Component("data")
	pt := instance.SplitPath(data.Template)
	assert.Equal(t, "/srv/tracim", pt.Parent)
	assert.Equal(t, "app-", pt.Elem.Prefix)
	assert.Equal(t, "data", pt.Rest)
	require.Len(t, l.Backups, 2)
	assert.Equal(t, 26*time.Hour, l.Backups[0].MaxAge)
	assert.Equal(t, int64(1024), l.Backups[0].MinSize)
	assert.Equal(t, 0.5, l.Backups[0].MaxShrink)
	assert.Equal(t, 48*time.Hour, l.Backups[1].MaxAge)
	assert.Equal(t, 23, l.Backups[0].Line)
}

func TestLoadLayoutFile_Examples(t *testing.T) {
	files, err := filepath.Glob("../../examples/layouts/*.yml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		_, err := instance.LoadLayoutFile(f)
		assert.NoError(t, err, f)
	}
}

// TestParseLayout_Refusals checks that each unsafe or malformed layout is
// refused with the file, line, key and value named.
func TestParseLayout_Refusals(t *testing.T) {
	replace := func(old, new string) string {
		require.Contains(t, goodLayout, old)
		return strings.Replace(goodLayout, old, new, 1)
	}
	cases := []struct {
		name, yaml string
		line       int
		key, value string
		msg        string
	}{
		{"unknown top key", goodLayout + "extra: 1\n", 34, "extra", "", "unknown key"},
		{"unknown component key", replace("    optional: true\n", "    optinal: true\n"), 13, "components[2].optinal", "", "unknown key"},
		{"no {name}", replace("/etc/tracim/{name}", "/etc/tracim/all"), 6, "components[0].path", "/etc/tracim/all", "exactly once"},
		{"relative", replace("/etc/tracim/{name}", "etc/tracim/{name}"), 6, "components[0].path", "etc/tracim/{name}", "absolute"},
		{"dotdot", replace("/etc/tracim/{name}", "/etc/tracim/../{name}"), 6, "components[0].path", "/etc/tracim/../{name}", "'..'"},
		{"glob", replace("/etc/tracim/{name}", "/etc/tra*/{name}"), 6, "components[0].path", "/etc/tra*/{name}", "glob"},
		{"glob brackets", replace("/etc/tracim/{name}", "/etc/tr[a]cim/{name}"), 6, "components[0].path", "", "glob"},
		{"bare under /", replace("/etc/tracim/{name}", "/{name}"), 6, "components[0].path", "/{name}", "system directory /"},
		{"bare under /etc", replace("/etc/tracim/{name}", "/etc/{name}"), 6, "components[0].path", "/etc/{name}", "system directory /etc"},
		{"bare under /var/lib", replace("/etc/tracim/{name}", "/var/lib/{name}/x"), 6, "components[0].path", "", "system directory /var/lib"},
		{"bare under /home", replace("/etc/tracim/{name}", "/home/{name}"), 6, "components[0].path", "", "system directory /home"},
		{"unclean", replace("/etc/tracim/{name}", "/etc//tracim/{name}"), 6, "components[0].path", "", "clean"},
		{"twice", replace("/etc/tracim/{name}", "/etc/{name}/{name}"), 6, "components[0].path", "", "exactly once"},
		{"wrong type bool", replace("optional: true", "optional: sometimes"), 13, "components[2].optional", "sometimes", "true or false"},
		{"number for string", replace("app: tracim", "app: 42"), 1, "app", "42", "expected a string"},
		{"unknown type", replace("type: systemd_unit", "type: docker"), 16, "components[3].type", "docker", "unknown component type"},
		{"path on unit", replace("unit: tracim@{name}.service", "path: /etc/x/{name}"), 17, "components[3].path", "", "takes unit"},
		{"dup component", replace("name: logs", "name: data"), 10, "components[2].name", "data", "duplicate"},
		{"flow db", replace("database: tracim_{name}", "database: {name}_db"), -1, "", "", "flow mapping"},
		{"bad regexp", replace("'^[a-z0-9][a-z0-9-]{0,62}$'", "'[a-'"), 2, "name_pattern", "[a-", "regular expression"},
		{"unknown format", replace("format: pg_custom", "format: pg_fancy"), 25, "backups[0].format", "pg_fancy", "unknown format"},
		{"bad duration", replace("max_age: 26h", "max_age: 26 hours"), 26, "backups[0].max_age", "26 hours", "malformed duration"},
		{"bad unit", replace("min_size: 1KiB", "min_size: 1KB2"), 27, "backups[0].min_size", "1KB2", "unknown unit"},
		{"bad shrink", replace("max_shrink: 50%", "max_shrink: 150%"), 28, "backups[0].max_shrink", "150%", "percentage"},
		{"bad checksum", replace("checksum: sha256_sidecar", "checksum: md5"), 29, "backups[0].checksum", "md5", "unknown checksum"},
		{"rule for unknown component", replace("component: database", "component: db"), 23, "backups[0].component", "db", "no component"},
		{"unknown rule key", replace("    max_age: 2d\n", "    max_agee: 2d\n"), 33, "backups[1].max_agee", "", "unknown key"},
		{"no components", "app: x\ncomponents: []\n", 2, "components", "", "non-empty list"},
		{"owner on dir", replace("    path: /etc/tracim/{name}\n", "    path: /etc/tracim/{name}\n    owner: tracim\n"), 7, "components[0].owner", "tracim", "only a postgresql component"},
		{"owner twice {name}", replace("    database: tracim_{name}\n", "    database: tracim_{name}\n    owner: '{name}_{name}'\n"), 22, "components[4].owner", "{name}_{name}", "at most once"},
		{"owner uppercase", replace("    database: tracim_{name}\n", "    database: tracim_{name}\n    owner: Tracim\n"), 22, "components[4].owner", "Tracim", "characters not allowed"},
		{"owner quote", replace("    database: tracim_{name}\n", "    database: tracim_{name}\n    owner: tracim\"x\n"), 22, "components[4].owner", "", "characters not allowed"},
		{"owner digit first", replace("    database: tracim_{name}\n", "    database: tracim_{name}\n    owner: 1tracim\n"), 22, "components[4].owner", "1tracim", "characters not allowed"},
		{"owner pg_", replace("    database: tracim_{name}\n", "    database: tracim_{name}\n    owner: pg_read_all_data\n"), 22, "components[4].owner", "pg_read_all_data", "PostgreSQL's own"},
		{"owner restore role", replace("    database: tracim_{name}\n", "    database: tracim_{name}\n    owner: fsrestore_role_{name}\n"), 22, "components[4].owner", "", "temporary restore roles"},
		{"owner empty", replace("    database: tracim_{name}\n", "    database: tracim_{name}\n    owner: ''\n"), 22, "components[4].owner", "", "must name a role"},
		{"missing app", "components:\n  - name: a\n    type: dir\n    path: /srv/x/{name}\n", 1, "app", "", "missing required key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := instance.ParseLayout([]byte(c.yaml), "/etc/fleetsafe/tracim.yml")
			require.Error(t, err)
			var le *instance.LayoutError
			require.True(t, errors.As(err, &le), "typed error: %v", err)
			assert.Equal(t, "/etc/fleetsafe/tracim.yml", le.File)
			if c.line >= 0 {
				assert.Equal(t, c.line, le.Line, err.Error())
			}
			assert.Equal(t, c.key, le.Key, err.Error())
			if c.value != "" {
				assert.Equal(t, c.value, le.Value)
			}
			assert.Contains(t, err.Error(), c.msg)
			assert.Contains(t, err.Error(), "/etc/fleetsafe/tracim.yml line")
		})
	}
}

func TestParseLayout_FlowMappingSaysWhy(t *testing.T) {
	_, err := instance.ParseLayout([]byte("app: x\ncomponents:\n  - {name: data, type: dir, path: /srv/x/{name}}\n"), "f.yml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "flow")
	assert.Contains(t, err.Error(), "f.yml line")
}

func TestLayoutFromMap(t *testing.T) {
	l, err := instance.LayoutFromMap(map[string]any{
		"app": "erp",
		"components": []any{
			map[string]any{"name": "data", "type": "dir", "path": "/srv/erp/{name}", "optional": false},
		},
	})
	require.NoError(t, err)
	assert.Equal(t, instance.ParamSource, l.Source)

	_, err = instance.LayoutFromMap(map[string]any{
		"app":        "erp",
		"components": []any{map[string]any{"name": "data", "type": "dir", "path": "/srv/{name}"}},
	})
	var le *instance.LayoutError
	require.True(t, errors.As(err, &le), "%v", err)
	assert.Equal(t, "components[0].path", le.Key)
	assert.Equal(t, "/srv/{name}", le.Value)
}

func TestParseDurationAndSize(t *testing.T) {
	for in, want := range map[string]time.Duration{"26h": 26 * time.Hour, "2d": 48 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute, "1w": 168 * time.Hour} {
		got, err := instance.ParseDuration(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "h", "26", "26x", "-1h", "1.2.3h"} {
		_, err := instance.ParseDuration(bad)
		assert.Error(t, err, bad)
	}
	for in, want := range map[string]int64{"1KiB": 1024, "2MB": 2e6, "512": 512, "1.5GiB": 3 << 29, "10 MiB": 10 << 20} {
		got, err := instance.ParseSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "KiB", "1XB", "1..2MB"} {
		_, err := instance.ParseSize(bad)
		assert.Error(t, err, bad)
	}
}

func TestValidateName(t *testing.T) {
	l, err := instance.ParseLayout([]byte(goodLayout), "t.yml")
	require.NoError(t, err)
	for _, ok := range []string{"acme", "a", "client-42", "0day"} {
		assert.NoError(t, l.ValidateName(ok), ok)
	}
	refused := map[string]string{
		"":                      "empty",
		" ":                     "whitespace",
		"acme ":                 "whitespace",
		"ac me":                 "whitespace",
		"acme\n":                "control",
		"ac\x00me":              "control",
		"acme*":                 "glob",
		"*":                     "glob",
		"acm?":                  "glob",
		"[a]cme":                "glob",
		"{a,b}":                 "glob",
		"a/b":                   "separator",
		"../etc":                "separator",
		"..":                    "relative",
		".":                     "relative",
		"a\\b":                  "separator",
		".fleetsafe":            "dot",
		"Acme":                  "name_pattern",
		"a_b":                   "name_pattern",
		"a,b":                   "list",
		"acme;rm":               "shell",
		"\xff":                  "UTF-8",
		"-rf":                   "dash",
		"$(reboot)":             "shell",
		"acme\u00a0x":           "whitespace",
		"caf\u00e9":             "name_pattern",
		"a\u200bb":              "name_pattern",
		strings.Repeat("a", 64): "name_pattern",
	}
	for name, why := range refused {
		err := l.ValidateName(name)
		var ie *instance.InvalidNameError
		require.True(t, errors.As(err, &ie), "%q must be refused", name)
		assert.Contains(t, err.Error(), why, "%q", name)
		assert.NotEmpty(t, ie.Hint())
	}
}

func TestValidateName_PermissivePatternStillRefusesGlobs(t *testing.T) {
	l, err := instance.ParseLayout([]byte("app: x\nname_pattern: '.*'\ncomponents:\n  - name: d\n    type: dir\n    path: /srv/x/{name}\n"), "t.yml")
	require.NoError(t, err)
	for _, bad := range []string{"*", "a/b", "..", "a b", ""} {
		assert.Error(t, l.ValidateName(bad), bad)
	}
	assert.NoError(t, l.ValidateName("Any_Thing"))
}

func TestExampleLayoutsDir(t *testing.T) {
	_, err := os.Stat("../../examples/layouts/tracim.yml")
	require.NoError(t, err)
}
