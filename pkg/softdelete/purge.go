package softdelete

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// PurgeRequest is one purge run over an archive directory.
type PurgeRequest struct {
	ArchiveDir string
	// Name restricts the purge to one instance.
	Name string
	// KeepLast archives are kept per instance (at least 1 unless Name is
	// given).
	KeepLast  int
	Now       time.Time
	CheckMode bool
	PG        pgdump.Conn
}

// Purged is one thing removed for good.
type Purged struct {
	Instance string `json:"instance"`
	Kind     string `json:"kind"` // quarantine, database, archive
	Path     string `json:"path"`
	Reason   string `json:"reason"`
}

// Purge removes, for good, quarantined components and databases whose
// purge_after has passed, and archives beyond KeepLast per instance
// (oldest first). It is the only code that deletes data permanently.
func Purge(ctx context.Context, req PurgeRequest) ([]Purged, error) {
	if !filepath.IsAbs(req.ArchiveDir) {
		return nil, fmt.Errorf("archive_dir %q is not an absolute path", req.ArchiveDir)
	}
	if req.Now.IsZero() {
		req.Now = time.Now().UTC()
	}
	if req.KeepLast < 0 || (req.KeepLast < 1 && req.Name == "") {
		return nil, &RefusedError{Name: "every instance", Reason: fmt.Sprintf("keep_last %d would remove the last archive of every instance", req.KeepLast),
			Advice: "keep_last below 1 is only accepted together with an explicit name"}
	}
	var names []string
	if req.Name != "" {
		if err := instance.ValidateName(req.Name, nil); err != nil {
			return nil, err
		}
		names = []string{req.Name}
	} else {
		entries, err := os.ReadDir(req.ArchiveDir)
		if errors.Is(err, fs.ErrNotExist) {
			return []Purged{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", req.ArchiveDir, err)
		}
		for _, e := range entries {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
	}
	out := []Purged{}
	for _, name := range names {
		dir, err := instance.Join(req.ArchiveDir, name)
		if err != nil {
			return out, err
		}
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		p, err := purgeInstance(ctx, req, name, dir)
		out = append(out, p...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func purgeInstance(ctx context.Context, req PurgeRequest, name, dir string) ([]Purged, error) {
	var out []Purged
	if !req.CheckMode {
		unlock, err := lock(dir, name)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	tss, err := Tombstones(dir)
	if err != nil {
		return nil, err
	}
	for _, ts := range tss {
		if ts.State != StateQuarantined || req.Now.Before(ts.PurgeAfter) {
			continue
		}
		why := fmt.Sprintf("deleted %s, purge_after %s passed", ts.DeletedAt.Format(time.RFC3339), ts.PurgeAfter.Format(time.RFC3339))
		for _, m := range ts.Components {
			kind := "quarantine"
			if m.Type == instance.TypePostgreSQL {
				kind = "database"
			}
			out = append(out, Purged{Instance: name, Kind: kind, Path: m.To, Reason: why})
			if req.CheckMode {
				continue
			}
			if m.Type == instance.TypePostgreSQL {
				err = dropDatabase(ctx, req.PG, m.To)
			} else {
				err = removeQuarantined(m.To, ts.ID)
			}
			if err != nil {
				return out, fmt.Errorf("purge %s component %s: %w", name, m.Component, err)
			}
		}
		if !req.CheckMode {
			ts.State = StatePurged
			if err := ts.write(); err != nil {
				return out, err
			}
		}
	}
	archives, err := filepath.Glob(filepath.Join(dir, "*.tar.zst"))
	if err != nil {
		return out, err
	}
	sort.Strings(archives) // names start with a UTC timestamp: oldest first
	for i := 0; i < len(archives)-req.KeepLast; i++ {
		out = append(out, Purged{Instance: name, Kind: "archive", Path: archives[i],
			Reason: fmt.Sprintf("older than the newest %d archive(s)", req.KeepLast)})
		if req.CheckMode {
			continue
		}
		for _, p := range []string{archives[i] + ".sha256", archives[i]} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return out, fmt.Errorf("remove %s: %w", p, err)
			}
		}
	}
	return out, nil
}

// removeQuarantined removes <parent>/.fleetsafe-trash/<id>/<base> through
// the os.Root of the trash directory, then the empty id directory.
func removeQuarantined(path, id string) error {
	trashID := filepath.Dir(path)
	if filepath.Base(trashID) != id || filepath.Base(filepath.Dir(trashID)) != TrashDir {
		return fmt.Errorf("%s is not a quarantine path of deletion %s", path, id)
	}
	root, err := os.OpenRoot(trashID)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.RemoveAll(filepath.Base(path)); err != nil {
		return err
	}
	if err := os.Remove(trashID); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil // other entries remain; leave the directory
	}
	return nil
}

func dropDatabase(ctx context.Context, pg pgdump.Conn, name string) error {
	if !strings.HasPrefix(name, "fstrash_") {
		return fmt.Errorf("refusing to drop %s: not a quarantine database", name)
	}
	db, err := pg.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgdump.QuoteIdent(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}
