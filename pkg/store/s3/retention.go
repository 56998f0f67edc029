package s3

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Retention is what S3 Object Lock keeps of one object version.
type Retention = store.Retention

var _ store.Retainer = (*Store)(nil)

// RetainedError is a removal the server refused because of Object Lock.
type RetainedError struct {
	Location  string
	Version   string
	Retention Retention
}

func (e *RetainedError) Error() string {
	return fmt.Sprintf("remove %s: kept by the store's Object Lock: %s", e.Location, e.Retention)
}

// Unwrap makes it a store.ErrRetained.
func (e *RetainedError) Unwrap() error { return store.ErrRetained }

// Hint says what to do.
func (e *RetainedError) Hint() string {
	if e.Retention.LegalHold {
		return "the object stays until its legal hold is lifted (s3api put-object-legal-hold --legal-hold Status=OFF), then purge again"
	}
	return "purge again after " + e.Retention.Until.UTC().Format(time.RFC3339) + "; nobody can remove it earlier (compliance), or only with the s3:BypassGovernanceRetention permission (governance)"
}

// retentionOf reads the retention and legal hold of key's version ("" for
// the newest) from the headers of a HEAD request, as S3 returns them
// (x-amz-object-lock-mode, -retain-until-date, -legal-hold): one request,
// and it works on servers whose GetObjectRetention answers in another
// XML shape (Versity's gateway).
func (s *Store) retentionOf(ctx context.Context, key, version string) (Retention, error) {
	var r Retention
	oi, err := s.c.StatObject(ctx, s.bucket, s.Object(key), minio.StatObjectOptions{VersionID: version})
	if err != nil {
		return r, s.fail("read the retention of", key, err)
	}
	h := oi.Metadata
	r.Mode = strings.ToUpper(h.Get("X-Amz-Object-Lock-Mode"))
	if u := h.Get("X-Amz-Object-Lock-Retain-Until-Date"); u != "" {
		t, err := time.Parse(time.RFC3339Nano, u)
		if err != nil {
			return r, fmt.Errorf("retention of %s: retain-until date %q: %w", s.Location(key), u, err)
		}
		r.Until = t
	}
	r.LegalHold = strings.EqualFold(h.Get("X-Amz-Object-Lock-Legal-Hold"), "ON")
	return r, nil
}

// noLockConfig: the bucket has no Object Lock configuration.
func noLockConfig(err error) bool {
	c, _ := code(err)
	return c == "NoSuchObjectLockConfiguration" || c == "ObjectLockConfigurationNotFoundError" || c == "InvalidRequest"
}

// Retention returns what keeps the newest version of key.
func (s *Store) Retention(ctx context.Context, key string) (Retention, error) {
	if err := store.CheckKey(key); err != nil {
		return Retention{}, err
	}
	r, err := s.retentionOf(ctx, key, "")
	if err != nil && errors.Is(err, store.ErrNotExist) {
		// Hidden by a delete marker (see hidden): the retention of the
		// newest version that holds data. Some servers (Versity's
		// gateway) answer a HEAD of a noncurrent version without its
		// lock headers: no retention is then reported, never a wrong one.
		if v, ok, herr := s.hidden(ctx, key); herr == nil && ok {
			return s.retentionOf(ctx, key, v.VersionID)
		}
	}
	return r, err
}

// Retain sets the retention of the newest version of key: mode
// "GOVERNANCE" or "COMPLIANCE" until the date, and a legal hold when
// legalHold. The bucket must have Object Lock enabled (CheckObjectLock).
func (s *Store) Retain(ctx context.Context, key string, mode string, until time.Time, legalHold bool) error {
	if err := store.CheckKey(key); err != nil {
		return err
	}
	obj := s.Object(key)
	if mode != "" {
		m := minio.RetentionMode(strings.ToUpper(mode))
		if !m.IsValid() {
			return fmt.Errorf("object lock mode %q: want governance or compliance", mode)
		}
		u := until.UTC()
		if err := s.c.PutObjectRetention(ctx, s.bucket, obj, minio.PutObjectRetentionOptions{Mode: &m, RetainUntilDate: &u}); err != nil {
			return s.fail("set the retention of", key, err)
		}
	}
	if legalHold {
		on := minio.LegalHoldEnabled
		if err := s.c.PutObjectLegalHold(ctx, s.bucket, obj, minio.PutObjectLegalHoldOptions{Status: &on}); err != nil {
			return s.fail("set the legal hold of", key, err)
		}
	}
	return nil
}

// ObjectLockError is a bucket that cannot keep objects locked.
type ObjectLockError struct {
	Bucket string
	Cause  error
}

func (e *ObjectLockError) Error() string {
	msg := fmt.Sprintf("bucket %q does not have Object Lock enabled: archives cannot be locked there", e.Bucket)
	if e.Cause != nil {
		msg += " (" + e.Cause.Error() + ")"
	}
	return msg
}

func (e *ObjectLockError) Unwrap() error { return e.Cause }

// Hint says how to enable it.
func (e *ObjectLockError) Hint() string {
	return "Object Lock is enabled when a bucket is created (aws s3api create-bucket --bucket " + e.Bucket +
		" --object-lock-enabled-for-bucket; mc mb --with-lock); on AWS an existing versioned bucket can have it turned on with " +
		"aws s3api put-object-lock-configuration --bucket " + e.Bucket + " --object-lock-configuration ObjectLockEnabled=Enabled; " +
		"or give an archive_store in a bucket that has it, or leave object_lock unset"
}

// CheckObjectLock returns an *ObjectLockError unless the bucket has
// Object Lock enabled.
func (s *Store) CheckObjectLock(ctx context.Context) error {
	enabled, _, _, _, err := s.c.GetObjectLockConfig(ctx, s.bucket)
	if err != nil {
		if noLockConfig(err) {
			return &ObjectLockError{Bucket: s.bucket}
		}
		var er minio.ErrorResponse
		if errors.As(err, &er) && er.StatusCode == 404 && er.Code != "NoSuchBucket" {
			return &ObjectLockError{Bucket: s.bucket}
		}
		return fmt.Errorf("object lock configuration of bucket %q: %w", s.bucket, s.explain(err))
	}
	if enabled != "Enabled" {
		return &ObjectLockError{Bucket: s.bucket}
	}
	return nil
}
