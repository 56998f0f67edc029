package modutil_test

import (
	"context"
	"strings"
	"testing"

	"github.com/fleetsafe/fleetsafe/internal/modutil"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
)

// The archive store group refuses what cannot be meant: both or neither
// of archive_dir and archive_store, s3_* settings without an s3:// store,
// a key without its secret, a bad encrypt_to; the secret never shows.
func TestStore_Refusals(t *testing.T) {
	spec := modutil.StoreSpec.Merge(ansible.Spec{Params: map[string]ansible.Param{"encrypt_to": {Type: ansible.TypeList, Elements: ansible.TypeStr}}})
	for _, tc := range []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{}, "one of the following is required: archive_dir, archive_store"},
		{map[string]any{"archive_dir": "/a", "archive_store": "s3://b/p"}, "mutually exclusive"},
		{map[string]any{"archive_dir": "/a", "s3_region": "eu-west-3"}, "only used with archive_store: s3://"},
		{map[string]any{"archive_store": "/a", "s3_endpoint": "http://x"}, "do not apply"},
		{map[string]any{"archive_store": "s3://b/p", "s3_secret_key": "Pl4nted-s3-secret"}, "go together"},
		{map[string]any{"archive_dir": "/a", "encrypt_to": []any{"age1nope"}}, "encrypt_to[0]"},
	} {
		p, err := ansible.Validate("m", spec, tc.raw)
		if err == nil {
			_, err = modutil.Store(context.Background(), p)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.raw, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "Pl4nted") {
			t.Errorf("%v: the secret is in the error: %v", tc.raw, err)
		}
	}
}
