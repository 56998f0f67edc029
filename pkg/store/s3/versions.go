package s3

import (
	"context"
	"errors"
	"io"

	"github.com/minio/minio-go/v7"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

var _ store.Versioner = (*Store)(nil)

// Versions lists the versions of key, delete markers included, newest
// first; none when the bucket keeps no versions.
func (s *Store) Versions(ctx context.Context, key string) ([]store.Version, error) {
	if err := store.CheckKey(key); err != nil {
		return nil, err
	}
	versioned, err := s.Versioned(ctx)
	if err != nil || !versioned {
		return nil, err
	}
	vs, err := s.versions(ctx, key)
	if err != nil {
		return nil, err
	}
	out := make([]store.Version, 0, len(vs))
	for _, v := range vs {
		out = append(out, store.Version{Key: key, ID: v.VersionID, Size: v.Size, ModTime: v.LastModified, DeleteMarker: v.IsDeleteMarker, Latest: v.IsLatest})
	}
	return out, nil
}

// OpenVersion reads the version id of key, streaming.
func (s *Store) OpenVersion(ctx context.Context, key, id string) (io.ReadCloser, error) {
	if err := store.CheckKey(key); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, errors.New("s3: empty version id")
	}
	body, _, _, err := s.c.GetObject(ctx, s.bucket, s.Object(key), minio.GetObjectOptions{VersionID: id})
	if err != nil {
		return nil, s.fail("open version "+id+" of", key, err)
	}
	return body, nil
}
