package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/minio/minio-go/v7"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Reading objects that others wrote (the backups a backup_verify rule
// names, s3://bucket/prefix/{name}/db-*.dump): by their full object
// names under the store's prefix, without the key rules of the archive
// store (a backup job names its objects as it likes), so that nothing a
// rule matches is left out of a listing.

// ListObjects returns every object whose name starts with prefix (below
// the store's own prefix), sorted by name; Info.Key is the name below the
// store's prefix.
func (s *Store) ListObjects(ctx context.Context, prefix string) ([]store.Info, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []store.Info
	for o := range s.c.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, s.fail("list", prefix, o.Err)
		}
		if o.IsDeleteMarker {
			continue
		}
		out = append(out, store.Info{Key: o.Key[len(s.prefix):], Size: o.Size, ModTime: o.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// GetObject reads the object name (below the store's prefix), streaming.
func (s *Store) GetObject(ctx context.Context, name string) (io.ReadCloser, error) {
	if name == "" {
		return nil, errors.New("s3: empty object name")
	}
	body, _, _, err := s.c.GetObject(ctx, s.bucket, s.prefix+name, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.fail("open", name, err)
	}
	return body, nil
}

// ReadAtCloser is an object read by ranges (a zip's central directory
// is at its end).
type ReadAtCloser interface {
	io.ReaderAt
	io.Closer
}

// ObjectReaderAt opens the object name for reads at any offset (each a
// ranged GET), and returns its size.
func (s *Store) ObjectReaderAt(ctx context.Context, name string) (ReadAtCloser, int64, error) {
	if name == "" {
		return nil, 0, errors.New("s3: empty object name")
	}
	o, err := s.c.Client.GetObject(ctx, s.bucket, s.prefix+name, minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, s.fail("open", name, err)
	}
	st, err := o.Stat()
	if err != nil {
		o.Close()
		return nil, 0, s.fail("stat", name, err)
	}
	if st.Size < 0 {
		o.Close()
		return nil, 0, fmt.Errorf("stat %s: no size", s.Location(name))
	}
	return o, st.Size, nil
}
