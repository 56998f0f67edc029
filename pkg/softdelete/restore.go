package softdelete

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mholt/archives"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// Restore sources.
const (
	SourceAuto       = "auto"
	SourceQuarantine = "quarantine"
	SourceArchive    = "archive"
)

// RestoreRequest is one restore.
type RestoreRequest struct {
	Name       string
	ArchiveDir string
	Source     string
	// Archive is an explicit archive path; default the newest.
	Archive string
	// Components restricts the restore to these components.
	Components []string
	// Force replaces present components: each is first moved into
	// quarantine (never overwritten, never removed).
	Force     bool
	CheckMode bool
	Options   instance.Options
}

// RestoreResult is the outcome of a restore.
type RestoreResult struct {
	Changed  bool     `json:"changed"`
	Source   string   `json:"source"`
	Restored []string `json:"restored"`
	Skipped  []string `json:"skipped"`
	Archive  string   `json:"archive,omitempty"`
	// Replaced lists present components moved aside by force.
	Replaced []QuarantineMove `json:"replaced"`
	Msg      string           `json:"msg,omitempty"`
}

// Restore brings an instance back from quarantine (a rename back) or from
// an archive (verified first, extracted through os.Root). A component that
// is present is never overwritten; restoring a complete instance changes
// nothing.
func Restore(ctx context.Context, l *instance.Layout, req RestoreRequest) (*RestoreResult, error) {
	if err := l.ValidateName(req.Name); err != nil {
		return nil, err
	}
	for _, c := range req.Components {
		if _, ok := l.Component(c); !ok {
			return nil, fmt.Errorf("no component %q in layout %s", c, l.Source)
		}
	}
	dir, err := instance.Join(req.ArchiveDir, req.Name)
	if err != nil {
		return nil, err
	}
	if req.Source == "" {
		req.Source = SourceAuto
	}
	inst, err := l.Resolve(ctx, req.Name, req.Options)
	var nf *instance.NotFoundError
	if err != nil && !errors.As(err, &nf) {
		return nil, err
	}
	res := &RestoreResult{Restored: []string{}, Skipped: []string{}, Replaced: []QuarantineMove{}}
	var want []instance.Component
	var replace []QuarantineMove
	replaceID := newID(time.Now())
	for _, c := range l.Components {
		if len(req.Components) > 0 && !slices.Contains(req.Components, c.Name) {
			continue
		}
		if st, _ := inst.State(c.Name); st.Present {
			if !req.Force {
				res.Skipped = append(res.Skipped, c.Name)
				continue
			}
			if st.Problem != "" {
				return nil, &RefusedError{Name: req.Name, Reason: fmt.Sprintf("component %s: %s", c.Name, st.Problem)}
			}
			from := st.Locator
			if c.Type == instance.TypeSystemdUnit {
				from = st.UnitFile
			}
			if from != "" {
				replace = append(replace, QuarantineMove{Component: c.Name, Type: c.Type, From: from, To: quarantineTarget(c.Type, from, replaceID)})
			}
		}
		want = append(want, c)
	}
	if len(want) == 0 {
		res.Source = req.Source
		res.Msg = "every requested component is present; nothing to restore"
		return res, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no archives or tombstones for %s under %s: %w", req.Name, req.ArchiveDir, err)
	}
	if !req.CheckMode {
		unlock, err := lock(dir, req.Name)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}

	ts, err := latestTombstone(dir)
	if err != nil {
		return nil, err
	}
	res.Replaced = replace
	if !req.CheckMode && len(replace) > 0 {
		// Present components make way, into quarantine and with a
		// tombstone of their own, before anything comes back.
		now := time.Now().UTC()
		aside := &Tombstone{ID: replaceID, Instance: req.Name, App: l.App, Components: replace,
			Reason: "replaced by a forced restore", DeletedAt: now, PurgeAfter: now.Add(30 * 24 * time.Hour),
			State: StateQuarantining, ToolVersion: Version, Path: filepath.Join(dir, replaceID+".tombstone.json")}
		if err := aside.write(); err != nil {
			return nil, err
		}
		if err := quarantine(ctx, Request{Options: req.Options}, aside); err != nil {
			return nil, err
		}
	}
	useQuarantine := req.Archive == "" && ts != nil && ts.State != StatePurged && ts.State != StateRestored && req.Source != SourceArchive
	if useQuarantine {
		// Auto falls back to the archive when a quarantined copy is gone.
		if useQuarantine, err = quarantineHolds(ctx, req.Options.PG, ts, want); err != nil {
			return nil, err
		}
	}
	if req.Source == SourceQuarantine && !useQuarantine {
		return nil, fmt.Errorf("no quarantined copy of %s to restore; use source: archive", req.Name)
	}
	if useQuarantine {
		res.Source = SourceQuarantine
		return restoreQuarantine(ctx, req, ts, want, res)
	}
	res.Source = SourceArchive
	archive := req.Archive
	if archive == "" {
		archive, err = newestArchive(dir)
		if err != nil {
			return nil, err
		}
	}
	res.Archive = archive
	return restoreArchive(ctx, req, archive, want, res)
}

func restoreQuarantine(ctx context.Context, req RestoreRequest, ts *Tombstone, want []instance.Component, res *RestoreResult) (*RestoreResult, error) {
	for _, c := range want {
		i := slices.IndexFunc(ts.Components, func(m QuarantineMove) bool { return m.Component == c.Name })
		if i < 0 {
			res.Skipped = append(res.Skipped, c.Name)
			continue
		}
		m := ts.Components[i]
		res.Restored = append(res.Restored, c.Name)
		if req.CheckMode {
			continue
		}
		var err error
		if m.Type == instance.TypePostgreSQL {
			err = moveDatabase(ctx, req.Options.PG, m.To, m.From, true)
		} else {
			err = movePathBack(m.To, m.From)
		}
		if err != nil {
			return nil, fmt.Errorf("restore component %s from quarantine: %w", c.Name, err)
		}
	}
	res.Changed = len(res.Restored) > 0
	if !req.CheckMode && res.Changed {
		ts.State = StateRestored
		for _, m := range ts.Components {
			if m.Type != instance.TypePostgreSQL {
				if _, err := os.Lstat(m.To); err == nil {
					ts.State = StateQuarantined // some components remain in quarantine
				}
			}
		}
		if err := ts.write(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// quarantineHolds reports whether every wanted component that the tombstone
// moved is still in quarantine.
func quarantineHolds(ctx context.Context, pg pgdump.Conn, ts *Tombstone, want []instance.Component) (bool, error) {
	for _, c := range want {
		i := slices.IndexFunc(ts.Components, func(m QuarantineMove) bool { return m.Component == c.Name })
		if i < 0 {
			continue
		}
		m := ts.Components[i]
		if m.Type != instance.TypePostgreSQL {
			if _, err := os.Lstat(m.To); err != nil {
				return false, nil
			}
			continue
		}
		db, err := pg.Open(ctx, "postgres")
		if err != nil {
			return false, err
		}
		ok, err := databaseExists(ctx, db, m.To)
		db.Close()
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func newestArchive(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.tar.zst"))
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no archive under %s", dir)
	}
	sort.Strings(files)
	return files[len(files)-1], nil
}

// UnsafeEntryError is an archive entry that would land outside its
// component or is of a kind fleetsafe never restores.
type UnsafeEntryError struct {
	Entry  string
	Reason string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("archive entry %q refused: %s", e.Entry, e.Reason)
}

// Hint tells the operator what to do.
func (e *UnsafeEntryError) Hint() string {
	return "the archive is not one fleetsafe wrote or it was tampered with; restore by hand after inspecting it"
}

// checkEntry refuses names and kinds that could escape a component.
func checkEntry(hdr *tar.Header) error {
	name := hdr.Name
	if err := checkName(name); err != "" {
		return &UnsafeEntryError{name, err}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
	case tar.TypeLink:
		if err := checkName(hdr.Linkname); err != "" {
			return &UnsafeEntryError{name, "hard link target: " + err}
		}
	default:
		return &UnsafeEntryError{name, fmt.Sprintf("entry type %q (devices, FIFOs and others) is never restored", hdr.Typeflag)}
	}
	return nil
}

// checkName returns why an archive name is unsafe, or "".
func checkName(name string) string {
	switch {
	case strings.HasPrefix(name, "/"):
		return "absolute name"
	case slices.Contains(strings.Split(name, "/"), ".."):
		return "name contains .."
	case !filepath.IsLocal(strings.TrimSuffix(name, "/")):
		return "name leaves the archive root"
	}
	return ""
}

// placement maps archive names of the components being restored to the
// place each lands, relative to its component's parent directory.
type placement struct {
	targets map[string]ManifestComponent
}

// locate returns the component an archive name belongs to and its path
// relative to the component's parent, or ok false for other entries.
func (p placement) locate(name string) (mc ManifestComponent, rel string, ok bool) {
	name = strings.TrimSuffix(name, "/")
	for comp, c := range p.targets {
		prefix := "components/" + comp
		if c.Type == instance.TypePostgreSQL || (name != prefix && !strings.HasPrefix(name, prefix+"/")) {
			continue
		}
		base := filepath.Base(c.Locator)
		rel = base
		if name != prefix && c.Type == instance.TypeDir {
			rel = filepath.Join(base, filepath.FromSlash(strings.TrimPrefix(name, prefix+"/")))
		}
		return c, rel, filepath.IsLocal(rel)
	}
	return ManifestComponent{}, "", false
}

func restoreArchive(ctx context.Context, req RestoreRequest, archive string, want []instance.Component, res *RestoreResult) (*RestoreResult, error) {
	m, err := VerifyArchive(ctx, archive)
	if err != nil {
		return nil, err
	}
	if m.Instance != req.Name {
		return nil, fmt.Errorf("archive %s holds instance %s, not %s", archive, m.Instance, req.Name)
	}
	targets := map[string]ManifestComponent{}
	for _, c := range want {
		i := slices.IndexFunc(m.Components, func(mc ManifestComponent) bool { return mc.Name == c.Name && mc.ArchivePath != "" })
		if i < 0 {
			res.Skipped = append(res.Skipped, c.Name)
			continue
		}
		targets[c.Name] = m.Components[i]
		res.Restored = append(res.Restored, c.Name)
	}
	res.Changed = len(res.Restored) > 0
	if req.CheckMode || !res.Changed {
		return res, nil
	}
	work, err := os.MkdirTemp(filepath.Dir(archive), ".work-restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	roots := map[string]*os.Root{}
	defer func() {
		for _, r := range roots {
			r.Close()
		}
	}()
	rootFor := func(mc ManifestComponent) (*os.Root, string, error) {
		parent := filepath.Dir(mc.Locator)
		if r, ok := roots[mc.Name]; ok {
			return r, filepath.Base(mc.Locator), nil
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, "", err
		}
		r, err := os.OpenRoot(parent)
		if err != nil {
			return nil, "", err
		}
		roots[mc.Name] = r
		return r, filepath.Base(mc.Locator), nil
	}
	place := placement{targets: targets}
	err = archiveFormat.Extract(ctx, mustOpen(archive), func(ctx context.Context, fi archives.FileInfo) error {
		hdr, _ := fi.Header.(*tar.Header)
		if hdr == nil {
			return fmt.Errorf("entry %s: not a tar entry", fi.NameInArchive)
		}
		if err := checkEntry(hdr); err != nil {
			return err
		}
		for comp, mc := range targets {
			if mc.Type == instance.TypePostgreSQL && hdr.Name == mc.ArchivePath {
				return extractTo(fi, filepath.Join(work, comp+".pgdump"))
			}
		}
		mc, rel, ok := place.locate(hdr.Name)
		if !ok {
			if strings.HasPrefix(hdr.Name, "components/") && rel != "" {
				return &UnsafeEntryError{hdr.Name, "lands outside its component"}
			}
			return nil
		}
		root, _, err := rootFor(mc)
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeLink {
			lmc, lrel, ok := place.locate(hdr.Linkname)
			if !ok || lmc.Name != mc.Name {
				return &UnsafeEntryError{hdr.Name, "hard link to an entry outside its component"}
			}
			return root.Link(lrel, rel)
		}
		return writeEntry(root, rel, hdr, fi)
	})
	if err != nil {
		return nil, fmt.Errorf("restore from %s: %w", archive, err)
	}
	// Metadata last, deepest first, so directory mtimes stay as archived.
	files := slices.Clone(m.Files)
	sort.Slice(files, func(i, j int) bool { return files[i].Name() > files[j].Name() })
	for _, e := range files {
		mc, rel, ok := place.locate(e.Name())
		if !ok || e.Type == "hardlink" {
			continue
		}
		root, _, err := rootFor(mc)
		if err != nil {
			return nil, err
		}
		if err := applyMeta(root, rel, e); err != nil {
			return nil, err
		}
	}
	for comp, mc := range targets {
		if mc.Type != instance.TypePostgreSQL {
			continue
		}
		if err := createDatabase(ctx, req.Options.PG, mc.Locator); err != nil {
			return nil, err
		}
		if err := pgdump.Restore(ctx, req.Options.PG, mc.Locator, filepath.Join(work, comp+".pgdump")); err != nil {
			return nil, fmt.Errorf("restore component %s: %w", comp, err)
		}
	}
	return res, nil
}

type lazyFile struct {
	path string
	f    *os.File
}

func (l *lazyFile) Read(p []byte) (int, error) {
	if l.f == nil {
		f, err := os.Open(l.path)
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	n, err := l.f.Read(p)
	if err == io.EOF {
		l.f.Close()
	}
	return n, err
}

func mustOpen(path string) io.Reader { return &lazyFile{path: path} }

func extractTo(fi archives.FileInfo, dest string) error {
	rc, err := fi.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func writeEntry(root *os.Root, rel string, hdr *tar.Header, fi archives.FileInfo) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		return root.MkdirAll(rel, 0o700)
	case tar.TypeSymlink:
		// The link is restored exactly as it was, whatever its target;
		// nothing is ever written through it.
		return root.Symlink(hdr.Linkname, rel)
	case tar.TypeReg:
		if err := root.MkdirAll(filepath.Dir(rel), 0o700); err != nil {
			return err
		}
		out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		rc, err := fi.Open()
		if err != nil {
			out.Close()
			return err
		}
		defer rc.Close()
		if _, err := io.Copy(out, rc); err != nil {
			out.Close()
			return err
		}
		if err := out.Sync(); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}
	return fmt.Errorf("entry %s: unsupported type", hdr.Name)
}

func applyMeta(root *os.Root, rel string, e FileEntry) error {
	if err := root.Lchown(rel, e.UID, e.GID); err != nil && !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("chown %s: %w", rel, err)
	}
	if e.Type == "symlink" {
		return lchtimes(root, rel, e.MTime) // a link has no mode of its own
	}
	if err := root.Chmod(rel, fs.FileMode(e.Mode).Perm()|modeBits(e.Mode)); err != nil {
		return fmt.Errorf("chmod %s: %w", rel, err)
	}
	if err := root.Chtimes(rel, e.MTime, e.MTime); err != nil {
		return fmt.Errorf("set times of %s: %w", rel, err)
	}
	return nil
}

func modeBits(m uint32) fs.FileMode {
	return fs.FileMode(m) & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func createDatabase(ctx context.Context, pg pgdump.Conn, name string) error {
	db, err := pg.Open(ctx, "postgres")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+pgdump.QuoteIdent(name)); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
