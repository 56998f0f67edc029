package archive

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// FileStoreOf returns the file store of path's directory's parent and
// path's key in it (<dir>/<file>), for the functions that take a path; the
// store of path's directory itself when its name cannot be a key.
func FileStoreOf(p string) (store.Store, string, error) {
	p = filepath.Clean(p)
	dir := filepath.Dir(p)
	st, err := store.NewFile(filepath.Dir(dir))
	if err != nil {
		return nil, "", err
	}
	if filepath.Dir(dir) == dir || store.CheckKey(filepath.Base(dir)) != nil {
		st, err = store.NewFile(dir)
		return st, filepath.Base(p), err
	}
	return st, filepath.Base(dir) + "/" + filepath.Base(p), nil
}

// ReadSidecar returns the digest the sidecar of the archive under key
// records.
func ReadSidecar(ctx context.Context, st store.Store, key string) (string, error) {
	loc := st.Location(key)
	rc, err := st.Open(ctx, key+sidecar.Suffix)
	if err != nil {
		return "", fmt.Errorf("no readable sidecar %s%s: %w", loc, sidecar.Suffix, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return "", fmt.Errorf("no readable sidecar %s%s: %w", loc, sidecar.Suffix, err)
	}
	return sidecar.Parse(data, loc)
}

// StoreDir returns the directory of a store that is one on this host.
func StoreDir(st store.Store) (string, bool) {
	if d, ok := st.(interface{ Dir() string }); ok {
		return d.Dir(), true
	}
	return "", false
}
