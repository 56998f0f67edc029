package softdelete

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/mholt/archives"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

// compareQuarantinedDump checks a quarantined component of a dump kind
// against the verified dump in its archive before it is moved back: the
// dump is extracted, checked against the manifest's sha256, and handed to
// the kind (Kind.CompareQuarantined). It returns why the copy cannot be
// trusted, or "". An error means the quarantine could not be left as it
// was (a database not closed to connections again).
func (r *restorer) compareQuarantinedDump(ctx context.Context, k kind.Kind, q QuarantineMove, comp, arch string, m *archive.Manifest) (string, error) {
	i := slices.IndexFunc(m.Databases, func(d archive.DumpEntry) bool { return d.Component == comp })
	if i < 0 {
		return "its archive holds no dump of it", nil
	}
	de := m.Databases[i]
	work, err := r.sh.workDir("compare-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	file := filepath.Join(work, comp+k.DumpExt())
	if err := extractEntry(ctx, r.refs[arch], de.Path, file); err != nil {
		return fmt.Sprintf("its archived dump cannot be read to compare it (%v)", err), nil
	}
	if sum, err := archive.HashPath(file); err != nil || sum != de.SHA256 {
		return fmt.Sprintf("its archived dump does not match the manifest's sha256 (%s, %v)", sum, err), nil
	}
	return k.CompareQuarantined(ctx, r.req.Options.Env(), q.move(), file)
}

// extractEntry writes one entry of an archive to dest.
func extractEntry(ctx context.Context, arch archRef, name, dest string) error {
	f, err := arch.open(ctx)
	if err != nil {
		return err
	}
	defer f.Close()
	found := false
	stop := errors.New("stop")
	err = archive.Codec.Extract(ctx, f, func(ctx context.Context, fi archives.FileInfo) error {
		if fi.NameInArchive != name {
			return nil
		}
		found = true
		if err := archive.ExtractTo(fi, dest); err != nil {
			return err
		}
		return stop
	})
	if err != nil && !errors.Is(err, stop) {
		return err
	}
	if !found {
		return fmt.Errorf("no entry %s", name)
	}
	return nil
}
