// Package s3 is the archive store of an S3 bucket (AWS, or any server that
// speaks S3: MinIO, Ceph RGW, Garage, SeaweedFS, Versity's gateway, the
// object storage of OVHcloud or Scaleway): s3://bucket/prefix.
//
// The client is minio-go (github.com/minio/minio-go/v7), chosen over the
// AWS SDK for Go v2 for these reasons, measured on this code base:
//   - size: a program linking minio-go's client and Object Lock calls is
//     7.5 MB (stripped), one linking the SDK's s3 service, its upload
//     manager and credentials 8.0 MB; fleetsafe already links net/http, so
//     minio-go adds less, and the collection tarball (two binaries, under
//     Galaxy's 20 MB) keeps its margin: measured by make collection,
//     13.2 MB before, 15.0 MB with this store (15.2 MB with age);
//   - dependencies: one module and its small helpers, against a dozen
//     aws-sdk-go-v2 and smithy modules released in lockstep;
//   - S3-compatible servers: minio-go is written against many of them;
//     the SDK v2's default checksums (since 2025) are refused by several
//     S3-compatible servers unless turned down by hand;
//   - what this store needs is all there: the low-level multipart calls
//     (Core) to stream an archive of unknown size part by part with
//     bounded memory, If-None-Match on PutObject and on
//     CompleteMultipartUpload (archives never replaced, the lock object),
//     per-part x-amz-checksum-sha256, Object Lock (bucket configuration,
//     retention, legal hold, governance bypass) and object versions.
//
// What a bucket cannot do that a directory can: there are no folders apart
// from their objects, no scratch space, and no host lock; the lock is an
// object created only if absent (lock.go), with an owner and an expiry.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Store is the archive store of one bucket and prefix.
type Store struct {
	c        *minio.Core
	bucket   string
	prefix   string // "" or ending in "/"
	partSize int64
	uploads  int
	// LockTTL is how long a lock lives without being renewed; its holder
	// renews it every third of it.
	LockTTL time.Duration
	// LockSkew is added to LockTTL before a lock is deemed abandoned: the
	// clocks of this host and of the server may differ by that much.
	LockSkew time.Duration

	versionedOnce sync.Once
	versioned     bool
	versionedErr  error
}

var _ store.Store = (*Store)(nil)

func init() {
	store.Register("s3", func(ctx context.Context, u *url.URL) (store.Store, error) {
		return OpenURL(ctx, u, Settings{}.FromEnv())
	})
}

// ParseURL splits s3://bucket/prefix.
func ParseURL(u *url.URL) (bucket, prefix string, err error) {
	if u.Scheme != "s3" {
		return "", "", fmt.Errorf("archive store %s: not an s3:// URL", u.Redacted())
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return "", "", fmt.Errorf("archive store %s: write s3://bucket/prefix (endpoint, credentials and options are parameters of their own)", u.Redacted())
	}
	bucket = u.Host
	if bucket == "" {
		return "", "", fmt.Errorf("archive store %s: no bucket (s3://bucket/prefix)", u.Redacted())
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := store.CheckKey(prefix); err != nil {
			return "", "", fmt.Errorf("archive store %s: prefix: %w", u.Redacted(), err)
		}
	}
	return bucket, prefix, nil
}

// Open opens the store at location, s3://bucket/prefix, with settings.
func Open(ctx context.Context, location string, s Settings) (*Store, error) {
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("archive store %q: %w", location, err)
	}
	return OpenURL(ctx, u, s)
}

// OpenURL opens the store of u, s3://bucket/prefix, and checks that the
// bucket is there and the credentials open it.
func OpenURL(ctx context.Context, u *url.URL, s Settings) (*Store, error) {
	bucket, prefix, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	st, err := New(bucket, prefix, s)
	if err != nil {
		return nil, err
	}
	ok, err := st.c.BucketExists(ctx, bucket)
	if err != nil {
		if c, status := code(err); c == "AccessDenied" || status == 403 {
			return nil, fmt.Errorf("archive store %s: %w (check s3_access_key and s3_secret_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that they may use bucket %q)", st.Location(""), err, bucket)
		}
		return nil, fmt.Errorf("archive store %s: %w", st.Location(""), st.explain(err))
	}
	if !ok {
		return nil, fmt.Errorf("archive store %s: bucket %q does not exist at %s", st.Location(""), bucket, st.c.EndpointURL().Host)
	}
	return st, nil
}

// New returns the store of bucket and prefix without contacting the
// server.
func New(bucket, prefix string, s Settings) (*Store, error) {
	host, secure, err := s.endpoint()
	if err != nil {
		return nil, err
	}
	set, on, err := s.pathStyle()
	if err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupAuto
	if set && on {
		lookup = minio.BucketLookupPath
	} else if set {
		lookup = minio.BucketLookupDNS
	}
	if (s.AccessKey == "") != (s.SecretKey == "") {
		return nil, errors.New("s3: give both the access key and the secret key, or neither")
	}
	var creds *credentials.Credentials
	if s.AccessKey != "" {
		creds = credentials.NewStaticV4(s.AccessKey, s.SecretKey, s.SessionToken)
	} else {
		// Anonymous: a public or policy-opened bucket.
		creds = credentials.NewStatic("", "", "", credentials.SignatureAnonymous)
	}
	region := s.Region
	if region == "" {
		region = "us-east-1"
	}
	c, err := minio.NewCore(host, &minio.Options{Creds: creds, Secure: secure, Region: region, BucketLookup: lookup, Transport: s.transport})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %s: %w", host, err)
	}
	if prefix != "" {
		prefix = strings.Trim(prefix, "/") + "/"
	}
	st := &Store{c: c, bucket: bucket, prefix: prefix, partSize: s.PartSize, uploads: s.Uploads, LockTTL: 10 * time.Minute, LockSkew: time.Minute}
	if st.partSize <= 0 {
		// S3's smallest: memory stays at (Uploads+1) × 5 MiB. Against
		// a distant server larger parts cost fewer requests (PartSize).
		st.partSize = 5 << 20
	}
	if st.partSize < 5<<20 {
		st.partSize = 5 << 20 // S3's smallest part but the last
	}
	if st.uploads <= 0 {
		st.uploads = 2
	}
	return st, nil
}

// Bucket returns the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// Object returns the object name of key in the bucket.
func (s *Store) Object(key string) string { return s.prefix + key }

// Location names key as s3://bucket/prefix/key.
func (s *Store) Location(key string) string {
	return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix+key, "/")
}

// code returns the S3 error code of err ("" when none).
func code(err error) (string, int) {
	er := minio.ToErrorResponse(err)
	return er.Code, er.StatusCode
}

// explain makes an S3 error say what to do, when it is a common one.
func (s *Store) explain(err error) error {
	switch c, _ := code(err); c {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return fmt.Errorf("%w (check s3_access_key and s3_secret_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", err)
	case "NoSuchBucket":
		return fmt.Errorf("%w (bucket %q)", err, s.bucket)
	}
	return err
}

// fail wraps an error of an operation on key, as store sentinels where
// they apply.
func (s *Store) fail(op, key string, err error) error {
	c, status := code(err)
	switch {
	case c == "NoSuchKey" || c == "NoSuchVersion" || (status == 404 && c != "NoSuchBucket"):
		return fmt.Errorf("%s %s: %w", op, s.Location(key), store.ErrNotExist)
	case c == "PreconditionFailed" || status == 412:
		return fmt.Errorf("%s %s: %w", op, s.Location(key), store.ErrExists)
	}
	return fmt.Errorf("%s %s: %w", op, s.Location(key), s.explain(err))
}

// Put writes a small object in one request, replacing any object there
// (in a versioned bucket the old one stays as an older version until
// Remove).
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	if err := store.CheckKey(key); err != nil {
		return err
	}
	if _, err := s.put(ctx, key, data, false); err != nil {
		return err
	}
	return nil
}

// put stores data under key with its SHA-256 checksum; ifAbsent refuses
// (ErrExists) when the key is taken.
func (s *Store) put(ctx context.Context, key string, data []byte, ifAbsent bool) (minio.UploadInfo, error) {
	sum := newPartSum(data)
	opts := minio.PutObjectOptions{UserMetadata: map[string]string{"X-Amz-Checksum-Sha256": sum.b64}, DisableContentSha256: true}
	if ifAbsent {
		opts.SetMatchETagExcept("*")
	}
	info, err := s.c.PutObject(ctx, s.bucket, s.Object(key), strings.NewReader(string(data)), int64(len(data)), "", sum.hex, opts)
	if err != nil {
		return info, s.fail("put", key, err)
	}
	return info, nil
}

// Open reads an object, streaming.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := store.CheckKey(key); err != nil {
		return nil, err
	}
	body, _, _, err := s.c.GetObject(ctx, s.bucket, s.Object(key), minio.GetObjectOptions{})
	if err != nil {
		err = s.fail("open", key, err)
		if !errors.Is(err, store.ErrNotExist) {
			return nil, err
		}
		v, ok, herr := s.hidden(ctx, key)
		if herr != nil || !ok {
			return nil, errors.Join(err, herr)
		}
		body, _, _, err = s.c.GetObject(ctx, s.bucket, s.Object(key), minio.GetObjectOptions{VersionID: v.VersionID})
		if err != nil {
			return nil, s.fail("open", key, err)
		}
	}
	return body, nil
}

// Stat describes an object.
func (s *Store) Stat(ctx context.Context, key string) (store.Info, error) {
	if err := store.CheckKey(key); err != nil {
		return store.Info{}, err
	}
	oi, err := s.c.StatObject(ctx, s.bucket, s.Object(key), minio.StatObjectOptions{})
	if err == nil && !oi.IsDeleteMarker {
		return store.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
	}
	if err == nil {
		err = fmt.Errorf("stat %s: %w", s.Location(key), store.ErrNotExist)
	} else if err = s.fail("stat", key, err); !errors.Is(err, store.ErrNotExist) {
		return store.Info{}, err
	}
	v, ok, herr := s.hidden(ctx, key)
	if herr != nil || !ok {
		return store.Info{}, errors.Join(err, herr)
	}
	return store.Info{Key: key, Size: v.Size, ModTime: v.LastModified, Hidden: true}, nil
}

// hidden finds, in a versioned bucket, the newest version of key that
// holds data when the key's current version is a delete marker. A plain
// DELETE (no version id) is allowed even under Object Lock: it only puts
// a marker over the locked version, which stays. Archives and tombstones
// hidden that way are still read (and reported as Hidden), so that a
// delete by hand can hide nothing from a restore or a purge; fleetsafe's
// own Remove deletes every version, markers included.
func (s *Store) hidden(ctx context.Context, key string) (minio.ObjectInfo, bool, error) {
	versioned, err := s.Versioned(ctx)
	if err != nil || !versioned {
		return minio.ObjectInfo{}, false, err
	}
	vs, err := s.versions(ctx, key)
	if err != nil {
		return minio.ObjectInfo{}, false, err
	}
	return newestData(vs)
}

// newestData picks, from the versions of one key (newest first), the
// newest that holds data when the current one is a delete marker.
func newestData(vs []minio.ObjectInfo) (minio.ObjectInfo, bool, error) {
	markerOnTop := false
	for _, v := range vs {
		if v.IsLatest {
			markerOnTop = v.IsDeleteMarker
		}
	}
	if len(vs) > 0 && !markerOnTop {
		// No version flagged latest: the newest by date decides.
		markerOnTop = vs[0].IsDeleteMarker
		for _, v := range vs {
			if v.IsLatest {
				markerOnTop = v.IsDeleteMarker
			}
		}
	}
	if !markerOnTop {
		return minio.ObjectInfo{}, false, nil
	}
	for _, v := range vs {
		if !v.IsDeleteMarker {
			return v, true, nil
		}
	}
	return minio.ObjectInfo{}, false, nil
}

// List returns the objects under prefix, sorted by key. Names that no key
// can be (an element empty or starting with '.', such as the locks) are
// left out.
func (s *Store) List(ctx context.Context, prefix string) ([]store.Info, error) {
	if p := strings.TrimSuffix(prefix, "/"); p != "" || prefix == "/" {
		if err := store.CheckKey(p); err != nil {
			return nil, err
		}
	}
	versioned, err := s.Versioned(ctx)
	if err != nil {
		return nil, err
	}
	if versioned {
		return s.listVersioned(ctx, prefix)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []store.Info
	for o := range s.c.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, s.fail("list", prefix, o.Err)
		}
		key := strings.TrimPrefix(o.Key, s.prefix)
		if store.CheckKey(key) != nil {
			continue
		}
		out = append(out, store.Info{Key: key, Size: o.Size, ModTime: o.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// listVersioned lists a versioned bucket: a key whose current version is
// a delete marker over versions that hold data is listed too, with its
// newest such version, Hidden (see hidden).
func (s *Store) listVersioned(ctx context.Context, prefix string) ([]store.Info, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	byKey := map[string][]minio.ObjectInfo{}
	for o := range s.c.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			return nil, s.fail("list", prefix, o.Err)
		}
		key := strings.TrimPrefix(o.Key, s.prefix)
		if store.CheckKey(key) != nil {
			continue
		}
		byKey[key] = append(byKey[key], o)
	}
	var out []store.Info
	for key, vs := range byKey {
		sortNewestFirst(vs)
		v, hidden, _ := newestData(vs)
		if !hidden {
			cur := vs[0]
			for _, o := range vs {
				if o.IsLatest {
					cur = o
				}
			}
			if cur.IsDeleteMarker {
				continue // deleted: only markers left
			}
			v = cur
		}
		out = append(out, store.Info{Key: key, Size: v.Size, ModTime: v.LastModified, Hidden: hidden})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func sortNewestFirst(vs []minio.ObjectInfo) {
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].LastModified.After(vs[j].LastModified) })
}

// Versioned reports whether the bucket keeps versions (Object Lock
// requires it).
func (s *Store) Versioned(ctx context.Context) (bool, error) {
	s.versionedOnce.Do(func() {
		cfg, err := s.c.GetBucketVersioning(ctx, s.bucket)
		if err != nil {
			s.versionedErr = fmt.Errorf("bucket versioning of %s: %w", s.Location(""), s.explain(err))
			return
		}
		s.versioned = cfg.Status == "Enabled" || cfg.Status == "Suspended"
	})
	return s.versioned, s.versionedErr
}

// Remove deletes an object for good: in a versioned bucket every version
// of it, oldest first (so that the object stays whole, its newest version
// visible, when a version is refused), not only a delete marker. A
// version under retention or legal hold is refused by the server: the
// error then wraps store.ErrRetained and says until when.
func (s *Store) Remove(ctx context.Context, key string) error {
	if err := store.CheckKey(key); err != nil {
		return err
	}
	if _, err := s.Stat(ctx, key); err != nil {
		return err
	}
	versioned, err := s.Versioned(ctx)
	if err != nil {
		return err
	}
	obj := s.Object(key)
	if !versioned {
		if err := s.c.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{}); err != nil {
			return s.removeFailed(ctx, key, "", err)
		}
		return nil
	}
	versions, err := s.versions(ctx, key)
	if err != nil {
		return err
	}
	// Delete markers first (a plain DELETE by hand): they hold nothing,
	// and with them gone a version that is refused below is the current
	// one again, whole and visible, its retention readable.
	for _, v := range versions {
		if v.IsDeleteMarker {
			if err := s.c.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{VersionID: v.VersionID}); err != nil {
				return s.fail("remove the delete marker of", key, err)
			}
		}
	}
	for i := len(versions) - 1; i >= 0; i-- {
		v := versions[i]
		if v.IsDeleteMarker {
			continue
		}
		if err := s.c.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{VersionID: v.VersionID}); err != nil {
			return s.removeFailed(ctx, key, v.VersionID, err)
		}
	}
	return nil
}

// versions lists the versions (and delete markers) of key, newest first.
func (s *Store) versions(ctx context.Context, key string) ([]minio.ObjectInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	obj := s.Object(key)
	var out []minio.ObjectInfo
	for o := range s.c.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: obj, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			return nil, s.fail("list versions of", key, o.Err)
		}
		if o.Key == obj {
			out = append(out, o)
		}
	}
	sortNewestFirst(out)
	return out, nil
}

// removeFailed explains a refused removal: under retention or legal hold,
// it says which and until when.
func (s *Store) removeFailed(ctx context.Context, key, version string, err error) error {
	if c, status := code(err); c == "AccessDenied" || status == 403 {
		if r, rerr := s.retentionOf(ctx, key, version); rerr == nil && r.Locked(time.Now()) {
			return &RetainedError{Location: s.Location(key), Version: version, Retention: r}
		}
	}
	return s.fail("remove", key, err)
}

// Endpoint returns the server's URL for an S3 client's --endpoint-url
// (RESTORE.md names it), or "" for AWS's own endpoints. It holds no
// credential.
func (s *Store) Endpoint() string {
	u := s.c.EndpointURL()
	if u == nil || strings.HasSuffix(u.Hostname(), ".amazonaws.com") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
