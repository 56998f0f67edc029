// Package s3test gives tests the local S3 server that scripts/s3-up.sh
// runs (Versity's gateway with Object Lock), and fresh buckets on it.
// Without the server the tests skip, unless FLEETSAFE_REQUIRE_S3=1 (set by
// `make test`), which makes them fail.
package s3test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
)

// EnvFile returns where scripts/s3-up.sh keeps the endpoint and
// credentials: FLEETSAFE_S3_ENV, else FLEETSAFE_S3_DIR/env, else its
// default state directory.
func EnvFile() string {
	if f := os.Getenv("FLEETSAFE_S3_ENV"); f != "" {
		return f
	}
	if d := os.Getenv("FLEETSAFE_S3_DIR"); d != "" {
		return filepath.Join(d, "env")
	}
	if os.Getuid() == 0 {
		return "/var/lib/fleetsafe-s3/env"
	}
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" {
		home, _ := os.UserHomeDir()
		state = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(state, "fleetsafe-s3", "env")
}

// Env returns the variables of the env file (endpoint, AWS_* credentials).
func Env(t testing.TB) map[string]string {
	t.Helper()
	f, err := os.Open(EnvFile())
	if err != nil {
		unavailable(t, "no S3 server settings: "+err.Error())
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("FLEETSAFE_REQUIRE_S3") == "1" {
		t.Fatalf("%s (FLEETSAFE_REQUIRE_S3=1; run scripts/s3-up.sh)", why)
	}
	t.Skipf("%s (run scripts/s3-up.sh, or make s3)", why)
}

// Settings returns the store settings of the local server (explicit, not
// from this process's AWS_* variables).
func Settings(t testing.TB) s3store.Settings {
	env := Env(t)
	return s3store.Settings{Endpoint: env["FLEETSAFE_S3_ENDPOINT"], Region: env["AWS_REGION"],
		AccessKey: env["AWS_ACCESS_KEY_ID"], SecretKey: env["AWS_SECRET_ACCESS_KEY"], PathStyle: "true"}
}

// Client returns a plain S3 client of the local server: what an operator
// would use by hand.
func Client(t testing.TB) *minio.Client {
	t.Helper()
	s := Settings(t)
	host := strings.TrimPrefix(strings.TrimPrefix(s.Endpoint, "http://"), "https://")
	c, err := minio.New(host, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: strings.HasPrefix(s.Endpoint, "https://"), Region: s.Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	// A minute: a server that is up answers in milliseconds, but on a
	// loaded machine may take seconds, and a slow answer is no absence.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.ListBuckets(ctx); err != nil {
		unavailable(t, "the S3 server at "+s.Endpoint+" does not answer: "+err.Error())
	}
	return c
}

// Bucket creates a fresh bucket, with Object Lock (and so versioning)
// when objectLock, and removes it after the test with every version in
// it (governance retention bypassed; a version under compliance
// retention stays, and its bucket with it, until its date).
func Bucket(t testing.TB, objectLock bool) string {
	t.Helper()
	c := Client(t)
	var b [6]byte
	rand.Read(b[:])
	name := "fleetsafe-test-" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{ObjectLocking: objectLock}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	t.Cleanup(func() { Empty(c, name) })
	return name
}

// Empty removes every version of every object of bucket (bypassing
// governance retention and lifting legal holds), then the bucket.
func Empty(c *minio.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			break
		}
		off := minio.LegalHoldDisabled
		c.PutObjectLegalHold(ctx, bucket, o.Key, minio.PutObjectLegalHoldOptions{VersionID: o.VersionID, Status: &off})
		c.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{VersionID: o.VersionID, GovernanceBypass: true})
	}
	for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err == nil {
			c.RemoveIncompleteUpload(ctx, bucket, u.Key)
		}
	}
	c.RemoveBucket(ctx, bucket)
}

// Store opens s3://bucket/prefix on the local server.
func Store(t testing.TB, bucket, prefix string) *s3store.Store {
	t.Helper()
	st, err := s3store.Open(context.Background(), "s3://"+bucket+"/"+prefix, Settings(t))
	if err != nil {
		t.Fatalf("open s3://%s/%s: %v", bucket, prefix, err)
	}
	return st
}
