package store

import (
	"context"
	"io"
	"time"
)

// Version is one version of an object in a store that keeps them (a
// versioned S3 bucket): every PUT under a key adds one, a plain DELETE
// adds a delete marker, and none of them is replaced.
type Version struct {
	Key     string
	ID      string
	Size    int64
	ModTime time.Time
	// DeleteMarker: a plain DELETE's marker; it holds nothing.
	DeleteMarker bool
	// Latest: the key's current version.
	Latest bool
}

// Versioner is a store that keeps the versions of its objects and reads
// any of them by id. Object Lock keeps versions from removal, not from
// additions: anyone allowed a PUT can put a new version over a locked
// one, and the locked one stays readable here.
type Versioner interface {
	Store
	// Versions lists the versions of key, delete markers included,
	// newest first (where markers fall among the versions holding data
	// is as exact as the server's dates: some list them apart); none
	// (nil) in a store or bucket that keeps no versions.
	Versions(ctx context.Context, key string) ([]Version, error)
	// OpenVersion reads the version id of key; a missing one is
	// ErrNotExist.
	OpenVersion(ctx context.Context, key, id string) (io.ReadCloser, error)
}

// DataVersions returns the versions that hold data, newest first.
func DataVersions(vs []Version) []Version {
	var out []Version
	for _, v := range vs {
		if !v.DeleteMarker {
			out = append(out, v)
		}
	}
	return out
}
