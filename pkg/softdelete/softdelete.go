package softdelete

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// Request is one soft deletion.
type Request struct {
	Name        string
	ArchiveDir  string
	Reason      string
	RequestedBy string
	JobID       string
	// Fingerprint, when set, must match the instance as found now.
	Fingerprint   string
	RetentionDays int
	// StopService stops an active systemd unit of the instance instead of
	// refusing.
	StopService bool
	CheckMode   bool
	Options     instance.Options
	// AfterStep, when set, is called after each step ("lock", "dump",
	// "archive", "verify", "tombstone", "quarantine:<component>"); tests
	// use it to crash the process at step boundaries.
	AfterStep func(step string)
}

// Result is the outcome of a soft deletion.
type Result struct {
	Changed     bool             `json:"changed"`
	Msg         string           `json:"msg,omitempty"`
	Archive     *ArchiveInfo     `json:"archive,omitempty"`
	Tombstone   *TombstoneInfo   `json:"tombstone,omitempty"`
	Quarantined []QuarantineMove `json:"quarantined"`
	// Plan is what check mode would do.
	Plan *Plan `json:"plan,omitempty"`
}

// TombstoneInfo is the tombstone part of a result.
type TombstoneInfo struct {
	ID         string    `json:"id"`
	Path       string    `json:"path"`
	DeletedAt  time.Time `json:"deleted_at"`
	PurgeAfter time.Time `json:"purge_after"`
}

// Plan lists what a deletion would archive and move.
type Plan struct {
	Components []string `json:"components"`
	Files      int      `json:"files"`
	Bytes      int64    `json:"bytes"`
	Databases  []string `json:"databases"`
}

// RefusedError is a deletion refused before anything changed.
type RefusedError struct {
	Name   string
	Reason string
	Advice string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refusing to delete %s: %s", e.Name, e.Reason)
}

// Hint tells the operator what to do.
func (e *RefusedError) Hint() string {
	if e.Advice != "" {
		return e.Advice + "; nothing was changed"
	}
	return "nothing was changed"
}

func newID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

func (r *Request) step(name string) {
	if r.AfterStep != nil {
		r.AfterStep(name)
	}
}

// Delete archives, verifies, tombstones and quarantines one instance, in
// that order; nothing is moved before the archive is verified from disk.
// Re-running after success changes nothing and returns the tombstone;
// re-running after a crash completes the deletion.
func Delete(ctx context.Context, l *instance.Layout, req Request) (*Result, error) {
	if err := l.ValidateName(req.Name); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return nil, &RefusedError{Name: req.Name, Reason: "no reason given", Advice: "say why in reason"}
	}
	if !filepath.IsAbs(req.ArchiveDir) {
		return nil, &RefusedError{Name: req.Name, Reason: fmt.Sprintf("archive_dir %q is not an absolute path", req.ArchiveDir)}
	}
	if req.RetentionDays <= 0 {
		req.RetentionDays = 30
	}
	dir, err := instance.Join(req.ArchiveDir, req.Name)
	if err != nil {
		return nil, err
	}
	if req.CheckMode {
		return plan(ctx, l, req, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create archive directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("archive directory: %w", err)
	}
	unlock, err := lock(dir, req.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	req.step("lock")
	removeStale(dir)

	inst, err := l.Resolve(ctx, req.Name, req.Options)
	var nf *instance.NotFoundError
	if errors.As(err, &nf) {
		// Already deleted: return the tombstone, change nothing.
		ts, terr := latestTombstone(dir)
		if terr != nil || ts == nil {
			return &Result{Msg: nf.Error(), Quarantined: []QuarantineMove{}}, terr
		}
		if ts.State == StateQuarantining {
			if err := quarantine(ctx, req, ts); err != nil {
				return nil, err
			}
			return &Result{Changed: true, Msg: "completed an interrupted deletion", Tombstone: ts.info(), Quarantined: ts.Components}, nil
		}
		return &Result{Msg: "already deleted", Tombstone: ts.info(), Quarantined: ts.Components}, nil
	}
	if err != nil {
		return nil, err
	}

	// A tombstone whose moves are not all done is a deletion interrupted
	// after its archive was verified: finish it.
	if ts, err := latestTombstone(dir); err != nil {
		return nil, err
	} else if ts != nil && ts.State == StateQuarantining {
		if err := quarantine(ctx, req, ts); err != nil {
			return nil, err
		}
		return &Result{Changed: true, Msg: "completed an interrupted deletion", Tombstone: ts.info(), Quarantined: ts.Components}, nil
	}

	if req.Fingerprint != "" && req.Fingerprint != inst.Fingerprint() {
		return nil, &RefusedError{Name: req.Name, Reason: "the instance no longer matches the approved fingerprint",
			Advice: "run the plan again (instance_info) and review what changed"}
	}
	if req.StopService {
		if inst, err = stopUnits(ctx, l, req, inst); err != nil {
			return nil, err
		}
	}
	if err := preflight(ctx, l, req, inst); err != nil {
		return nil, err
	}

	now := time.Now().UTC()
	id := newID(now)
	work := filepath.Join(dir, ".work-"+id)
	if err := os.Mkdir(work, 0o700); err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(work)

	m := &Manifest{Format: ArchiveFormat, ID: id, Instance: inst.Name, App: l.App, Layout: l.Source,
		Host: inst.Host, Fingerprint: inst.Fingerprint(), Reason: req.Reason, RequestedBy: req.RequestedBy,
		JobID: req.JobID, ToolVersion: Version, CreatedAt: now, Files: []FileEntry{}, Databases: []DumpEntry{}}
	col := newCollector()
	defer col.close()
	var dumps []dumpFile
	for _, c := range l.Components {
		st, _ := inst.State(c.Name)
		mc := ManifestComponent{Name: c.Name, Type: c.Type, Locator: st.Locator, Present: st.Present}
		if st.Present {
			switch c.Type {
			case instance.TypeDir, instance.TypeFile:
				if err := col.addComponent(c, inst.Name); err != nil {
					return nil, err
				}
				mc.ArchivePath = "components/" + c.Name
			case instance.TypePostgreSQL:
				d := dumpFile{path: filepath.Join(work, c.Name+".pgdump"),
					entry: DumpEntry{Component: c.Name, Database: st.Locator, Path: "components/" + c.Name + ".pgdump"}}
				if err := pgdump.Dump(ctx, req.Options.PG, st.Locator, d.path); err != nil {
					return nil, fmt.Errorf("dump component %s: %w", c.Name, err)
				}
				if err := describeDump(&d); err != nil {
					return nil, err
				}
				dumps = append(dumps, d)
				m.Databases = append(m.Databases, d.entry)
				mc.ArchivePath = d.entry.Path
			}
		}
		m.Components = append(m.Components, mc)
	}
	req.step("dump")
	if err := col.hashAll(); err != nil {
		return nil, err
	}
	req.step("hash")
	archivePath := filepath.Join(dir, id+".tar.zst")
	info, err := writeArchive(ctx, archivePath, m, Runbook(m, archivePath), col.sources, dumps)
	if err != nil {
		return nil, err
	}
	req.step("archive")
	if _, err := VerifyArchive(ctx, archivePath); err != nil {
		// A bad archive is never kept where restore would find it.
		os.Remove(archivePath + ".sha256")
		os.Remove(archivePath)
		return nil, explainVerifyError(err, col.sources)
	}
	info.Verified = true
	req.step("verify")
	// What is moved must be what was archived: a component swapped for a
	// link (to / or to another instance) meanwhile is refused.
	if err := col.checkTops(l, inst.Name); err != nil {
		return nil, err
	}

	ts := &Tombstone{ID: id, Instance: inst.Name, App: l.App, Host: inst.Host, ArchivePath: archivePath,
		ArchiveSHA256: info.SHA256, Reason: req.Reason, RequestedBy: req.RequestedBy, JobID: req.JobID,
		DeletedAt: now, PurgeAfter: now.Add(time.Duration(req.RetentionDays) * 24 * time.Hour),
		State: StateQuarantining, ToolVersion: Version, Path: filepath.Join(dir, id+".tombstone.json")}
	for _, c := range l.Components {
		st, _ := inst.State(c.Name)
		if !st.Present {
			continue
		}
		from := st.Locator
		if c.Type == instance.TypeSystemdUnit {
			if st.UnitFile == "" {
				continue // known to systemctl only: nothing to move
			}
			from = st.UnitFile
		}
		ts.Components = append(ts.Components, QuarantineMove{Component: c.Name, Type: c.Type, From: from, To: quarantineTarget(c.Type, from, id)})
	}
	if err := ts.write(); err != nil {
		return nil, err
	}
	req.step("tombstone")
	if err := quarantine(ctx, req, ts); err != nil {
		return nil, err
	}
	return &Result{Changed: true, Archive: info, Tombstone: ts.info(), Quarantined: ts.Components}, nil
}

// explainVerifyError tells a file that changed during archiving from a
// corrupted archive by hashing the file once more, as restic re-checks a
// failed item.
func explainVerifyError(err error, srcs []*source) error {
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Entry == "" {
		return err
	}
	for _, s := range srcs {
		if s.entry.Path != ve.Entry {
			continue
		}
		sum, herr := hashFile(s.root, s.rel, make([]byte, 64<<10))
		if herr != nil || sum != s.entry.SHA256 {
			return &ChangedFileError{Path: filepath.Join(s.root.Name(), s.rel)}
		}
	}
	return err
}

func describeDump(d *dumpFile) error {
	f, err := os.Open(d.path)
	if err != nil {
		return fmt.Errorf("read dump: %w", err)
	}
	defer f.Close()
	h := newHasher()
	sum, err := pgdump.Verify(teeHash(f, h))
	if err != nil {
		return fmt.Errorf("dump of %s: %w", d.entry.Database, err)
	}
	if err := drain(f, h); err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	d.entry.Size = st.Size()
	d.entry.SHA256 = h.hex()
	d.entry.TOCEntries, d.entry.DataBlocks = sum.Entries, sum.DataBlocks
	return nil
}

// preflight refuses, with nothing changed, what must not be deleted now:
// components that are unsafe to touch, active units, open connections.
func preflight(ctx context.Context, l *instance.Layout, req Request, inst *instance.Instance) error {
	for _, st := range inst.Components {
		if st.Present && (st.Type == instance.TypeDir || st.Type == instance.TypeFile) {
			if err := sameFilesystem(inst.Name, st.Locator); err != nil {
				return err
			}
		}
		if st.Present && st.Problem != "" {
			return &RefusedError{Name: inst.Name, Reason: fmt.Sprintf("component %s: %s", st.Name, st.Problem),
				Advice: "inspect the component by hand"}
		}
		if st.Active != nil && *st.Active {
			return &RefusedError{Name: inst.Name, Reason: fmt.Sprintf("unit %s is active", st.Locator),
				Advice: "stop the unit first, or set stop_service: true"}
		}
		if st.Present && st.Type == instance.TypePostgreSQL {
			conns, err := openConnections(ctx, req.Options.PG, st.Locator)
			if err != nil {
				return err
			}
			if len(conns) > 0 {
				return &RefusedError{Name: inst.Name,
					Reason: fmt.Sprintf("database %s has %d open connection(s): %s", st.Locator, len(conns), strings.Join(conns, "; ")),
					Advice: "stop the application or close those sessions"}
			}
		}
	}
	return nil
}

// stopUnits stops the instance's active units and looks again.
func stopUnits(ctx context.Context, l *instance.Layout, req Request, inst *instance.Instance) (*instance.Instance, error) {
	stopped := false
	for _, st := range inst.Components {
		if st.Active != nil && *st.Active {
			if err := instance.StopUnit(ctx, req.Options, st.Locator); err != nil {
				return nil, err
			}
			stopped = true
		}
	}
	if !stopped {
		return inst, nil
	}
	return l.Resolve(ctx, req.Name, req.Options)
}

func openConnections(ctx context.Context, pg pgdump.Conn, db string) ([]string, error) {
	conn, err := pg.Open(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, `SELECT coalesce(nullif(application_name, ''), '(no application name)'),
		coalesce(host(client_addr), 'local socket'), coalesce(usename, '')
		FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, db)
	if err != nil {
		return nil, fmt.Errorf("list connections to %s: %w", db, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var app, client, user string
		if err := rows.Scan(&app, &client, &user); err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("application %s, client %s, user %s", app, client, user))
	}
	return out, rows.Err()
}

// lock takes the per-instance lock; a second run refuses at once.
func lock(dir, name string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, &RefusedError{Name: name, Reason: "another fleetsafe run holds the lock of this instance",
			Advice: "wait for it to finish, then run again"}
	}
	return func() { f.Close() }, nil
}

// removeStale removes temporary files and work directories left by a
// crashed run; the caller holds the lock.
func removeStale(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".work-") || (strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".tmp")) {
			os.RemoveAll(filepath.Join(dir, n))
		}
	}
}

func plan(ctx context.Context, l *instance.Layout, req Request, dir string) (*Result, error) {
	inst, err := l.Resolve(ctx, req.Name, req.Options)
	var nf *instance.NotFoundError
	if errors.As(err, &nf) {
		ts, _ := latestTombstone(dir)
		res := &Result{Msg: nf.Error(), Quarantined: []QuarantineMove{}}
		if ts != nil {
			res.Tombstone = ts.info()
		}
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	if req.Fingerprint != "" && req.Fingerprint != inst.Fingerprint() {
		return nil, &RefusedError{Name: req.Name, Reason: "the instance no longer matches the approved fingerprint",
			Advice: "run the plan again (instance_info) and review what changed"}
	}
	if err := preflight(ctx, l, req, inst); err != nil {
		return nil, err
	}
	p := &Plan{Components: []string{}, Databases: []string{}}
	var moves []QuarantineMove
	col := newCollector()
	defer col.close()
	for _, c := range l.Components {
		st, _ := inst.State(c.Name)
		if !st.Present || c.Type == instance.TypeSystemdUnit {
			continue
		}
		p.Components = append(p.Components, c.Name)
		moves = append(moves, QuarantineMove{Component: c.Name, Type: c.Type, From: st.Locator, To: quarantineTarget(c.Type, st.Locator, "<id>")})
		switch c.Type {
		case instance.TypePostgreSQL:
			p.Databases = append(p.Databases, st.Locator)
			if st.SizeBytes != nil {
				p.Bytes += *st.SizeBytes
			}
		default:
			if err := col.addComponent(c, inst.Name); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range col.sources {
		p.Files++
		p.Bytes += s.entry.Size
	}
	return &Result{Changed: true, Plan: p, Quarantined: moves}, nil
}

func (t *Tombstone) info() *TombstoneInfo {
	return &TombstoneInfo{ID: t.ID, Path: t.Path, DeletedAt: t.DeletedAt, PurgeAfter: t.PurgeAfter}
}

func (t *Tombstone) write() error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(t.Path, append(data, '\n'))
}

// ReadTombstone reads one tombstone file.
func ReadTombstone(path string) (*Tombstone, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tombstone: %w", err)
	}
	t := &Tombstone{}
	if err := json.Unmarshal(data, t); err != nil {
		return nil, fmt.Errorf("tombstone %s: %w", path, err)
	}
	if t.ID == "" || t.Instance == "" {
		return nil, fmt.Errorf("tombstone %s: missing id or instance", path)
	}
	t.Path = path
	return t, nil
}

// Tombstones returns the tombstones of an instance, oldest first.
func Tombstones(dir string) ([]*Tombstone, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.tombstone.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []*Tombstone
	for _, f := range files {
		t, err := ReadTombstone(f)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func latestTombstone(dir string) (*Tombstone, error) {
	ts, err := Tombstones(dir)
	if err != nil || len(ts) == 0 {
		return nil, err
	}
	return ts[len(ts)-1], nil
}
