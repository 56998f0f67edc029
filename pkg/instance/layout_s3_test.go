package instance_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

// TestParseLayout_S3RulePaths: a backup rule may name objects
// (s3://bucket/key-glob with {name} in the key); a malformed one is an
// error naming file, line, key and value.
func TestParseLayout_S3RulePaths(t *testing.T) {
	layout := func(p string) string {
		return "app: x\ncomponents:\n  - name: data\n    type: dir\n    path: /srv/x/{name}/data\nbackups:\n" +
			"  - component: data\n    path: " + p + "\n    format: tar_zst\n"
	}
	l, err := instance.ParseLayout([]byte(layout("s3://bk/pre/{name}/data-*.tar.zst")), "/etc/fleetsafe/x.yml")
	require.NoError(t, err)
	assert.Equal(t, "s3://bk/pre/{name}/data-*.tar.zst", l.Backups[0].Path)
	for _, c := range []struct{ path, want string }{
		{"s3:///{name}/a", "names its bucket"},
		{"s3://b*/{name}/a", "named literally"},
		{"s3://{name}/a", "named literally"},
		{"s3://ak:sk@bk/{name}/a", "named literally"},
		{"s3://bk", "needs a key"},
		{"s3://bk/", "needs a key"},
		{"s3://bk//{name}/a", "empty element"},
		{"s3://bk/{name}/", "empty element"},
		{"s3://bk/a/../{name}/x", "'..'"},
		{"s3://bk/a/{name}/{name}", "exactly once"},
		{"s3://bk/a/b", "{name}"},
		{"s3://bk/{name}/[a", "malformed glob"},
		{"gs://bk/{name}/a", "absolute"},
	} {
		_, err := instance.ParseLayout([]byte(layout(c.path)), "/etc/fleetsafe/x.yml")
		require.Error(t, err, c.path)
		var le *instance.LayoutError
		require.True(t, errors.As(err, &le), "%s: typed error: %v", c.path, err)
		assert.Equal(t, "backups[0].path", le.Key, c.path)
		assert.Equal(t, 8, le.Line, c.path)
		assert.True(t, strings.Contains(err.Error(), c.want), "%s: %v", c.path, err)
	}
}
