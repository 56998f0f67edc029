package modutil

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/ansible"
	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/encrypted"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
)

// StoreSpec is the archive store group of instance_soft_delete,
// instance_restore and instance_purge: archive_dir (a directory of the
// host) or archive_store (a directory, file:///dir or s3://bucket/prefix),
// exactly one, and the S3 settings, which default to the usual AWS_*
// variables of the module's environment.
var StoreSpec = ansible.Spec{Params: map[string]ansible.Param{
	"archive_dir":      {Type: ansible.TypePath},
	"archive_store":    {Type: ansible.TypeStr},
	"s3_endpoint":      {Type: ansible.TypeStr},
	"s3_region":        {Type: ansible.TypeStr},
	"s3_access_key":    {Type: ansible.TypeStr},
	"s3_secret_key":    {Type: ansible.TypeStr, NoLog: true},
	"s3_session_token": {Type: ansible.TypeStr, NoLog: true},
	"s3_path_style":    {Type: ansible.TypeBool},
},
	MutuallyExclusive: [][]string{{"archive_dir", "archive_store"}},
	RequiredOneOf:     [][]string{{"archive_dir", "archive_store"}},
}

// OptionalStoreSpec is StoreSpec where neither is required (instance_info:
// without either, no archive is looked at).
var OptionalStoreSpec = ansible.Spec{Params: StoreSpec.Params, MutuallyExclusive: StoreSpec.MutuallyExclusive}

// Store returns the store archive_store names, opened with the s3_*
// settings, or nil when archive_dir is given (the library opens it); with
// encrypt_to (soft delete) or decrypt_identity_file (restore), either one
// wrapped by pkg/store/encrypted.
func Store(ctx context.Context, p ansible.Params) (store.Store, error) {
	st, err := plainStore(ctx, p)
	if err != nil {
		return nil, err
	}
	var keys encrypted.Keys
	if to := p.Strings("encrypt_to"); len(to) > 0 {
		if keys.Recipients, err = encrypted.ParseRecipients(to); err != nil {
			return nil, &ansible.ParamError{Msg: err.Error()}
		}
		// Soft delete reads its archive back before anything moves.
		if keys, err = encrypted.Ephemeral(keys); err != nil {
			return nil, err
		}
	}
	if f := p.String("decrypt_identity_file"); f != "" {
		if keys.Identities, err = encrypted.ReadIdentities(f); err != nil {
			return nil, err
		}
	}
	// A module that restores always looks for age's header, so that an
	// encrypted archive read without an identity is named as such.
	_, restores := p["decrypt_identity_file"]
	if len(keys.Recipients) == 0 && len(keys.Identities) == 0 && !restores {
		return st, nil
	}
	if st == nil {
		if st, err = store.NewFile(p.String("archive_dir")); err != nil {
			return nil, err
		}
	}
	return encrypted.Wrap(st, keys), nil
}

func plainStore(ctx context.Context, p ansible.Params) (store.Store, error) {
	loc := p.String("archive_store")
	s3Given := []string{}
	for _, k := range []string{"s3_endpoint", "s3_region", "s3_access_key", "s3_secret_key", "s3_session_token", "s3_path_style"} {
		if p.Has(k) {
			s3Given = append(s3Given, k)
		}
	}
	if loc == "" {
		if len(s3Given) > 0 {
			return nil, &ansible.ParamError{Msg: fmt.Sprintf("parameters are only used with archive_store: s3://...: %s", strings.Join(s3Given, ", "))}
		}
		return nil, nil
	}
	if !strings.HasPrefix(loc, "s3://") {
		if len(s3Given) > 0 {
			return nil, &ansible.ParamError{Msg: fmt.Sprintf("archive_store %q is not s3://: %s do not apply", loc, strings.Join(s3Given, ", "))}
		}
		if strings.HasPrefix(loc, "/") {
			loc = filepath.Clean(loc)
		}
		return store.Open(ctx, loc)
	}
	set, err := S3Settings(p)
	if err != nil {
		return nil, err
	}
	return s3store.Open(ctx, loc, set.FromEnv())
}

// S3Spec is the S3 settings alone (backup_verify: for backup rules that
// name objects, s3://bucket/prefix/{name}/...).
var S3Spec = ansible.Spec{Params: map[string]ansible.Param{
	"s3_endpoint":      StoreSpec.Params["s3_endpoint"],
	"s3_region":        StoreSpec.Params["s3_region"],
	"s3_access_key":    StoreSpec.Params["s3_access_key"],
	"s3_secret_key":    StoreSpec.Params["s3_secret_key"],
	"s3_session_token": StoreSpec.Params["s3_session_token"],
	"s3_path_style":    StoreSpec.Params["s3_path_style"],
}}

// S3Settings returns the s3_* parameters as store settings; their empty
// fields take the AWS_* variables when used (Settings.FromEnv).
func S3Settings(p ansible.Params) (s3store.Settings, error) {
	set := s3store.Settings{Endpoint: p.String("s3_endpoint"), Region: p.String("s3_region"),
		AccessKey: p.String("s3_access_key"), SecretKey: p.String("s3_secret_key"), SessionToken: p.String("s3_session_token")}
	if p.Has("s3_path_style") {
		set.PathStyle = fmt.Sprint(p.Bool("s3_path_style"))
	}
	if (set.AccessKey == "") != (set.SecretKey == "") {
		return set, &ansible.ParamError{Msg: "s3_access_key and s3_secret_key go together: give both, or neither (then AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"}
	}
	return set, nil
}
