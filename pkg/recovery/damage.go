package recovery

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

	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
)

// Damage statuses.
const (
	// DamagePartial: present on the host, a required component missing.
	DamagePartial = "partial"
	// DamageGone: nothing of it on the host, but backups credited to it.
	DamageGone = "gone"
)

// Damaged is one damaged instance and what a restore from backups would
// do for it.
type Damaged struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// Missing lists the components not on the host.
	Missing []string `json:"missing"`
	// Components is the restore plan (check mode) of every component:
	// would_restore with the newest good backup and the refused newer
	// ones, no_good_backup, not_restorable, or present.
	Components []ComponentResult `json:"components"`
	// Restorable is true when every missing component that is required
	// and backed up has a good backup (an optional component, or one with
	// backup: false, is reported but does not count).
	Restorable bool `json:"restorable"`
	// RecoveryPoint is the mtime of the oldest backup the restore would
	// use.
	RecoveryPoint *time.Time `json:"recovery_point"`
	// LastActivity is the latest modification seen on the host, or for
	// a gone instance its newest backup (restore priority after the
	// names given).
	LastActivity *time.Time `json:"last_activity"`
	// Problem says why the plan could not be made or is incomplete.
	Problem string `json:"problem,omitempty"`
}

// DamageReport is the inventory of the damage of one layout on a host.
type DamageReport struct {
	App     string    `json:"app"`
	Damaged []Damaged `json:"damaged"`
	// Uncertain lists backup files whose instance name cannot be told
	// ("a or b"): never guessed.
	Uncertain []backup.Orphan `json:"uncertain"`
	// SoftDeleted lists names gone on purpose (a soft delete's tombstone
	// under archive_dir) that still have backups: not damage.
	SoftDeleted []string `json:"soft_deleted"`
}

// DamageOptions tunes an inventory.
type DamageOptions struct {
	// ArchiveDir is instance_soft_delete's archive_dir, when known: its
	// names are known names, and a name soft-deleted there is no damage.
	ArchiveDir string
	Options    instance.Options
	Now        time.Time
	// S3 reaches the buckets of backup rules in object storage
	// (s3://bucket/prefix/{name}/...); its empty fields take the AWS_*
	// variables.
	S3 s3store.Settings
}

// Inventory lists every instance of the layout on this host that is
// partial, or gone but with backups, which components are missing, and
// for each the newest good backup (the plan of a restore from backups,
// made in check mode: nothing is changed, nothing is guessed).
func Inventory(ctx context.Context, l *instance.Layout, opts DamageOptions) (*DamageReport, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	rep := &DamageReport{App: l.App, Damaged: []Damaged{}, Uncertain: []backup.Orphan{}, SoftDeleted: []string{}}
	insts, err := l.Discover(ctx, opts.Options)
	if err != nil {
		return nil, fmt.Errorf("discover instances: %w", err)
	}
	type cand struct {
		name   string
		status string
		last   *time.Time
	}
	var cands []cand
	for _, i := range insts {
		if i.Status == instance.StatusPartial || hasPlaceholder(l, i) {
			cands = append(cands, cand{i.Name, DamagePartial, i.LastActivity})
		}
	}
	orphans, err := backup.BackupOrphans(ctx, l, backup.Options{Discovery: opts.Options, ArchiveDir: opts.ArchiveDir, Now: opts.Now, S3: opts.S3})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, o := range orphans {
		if strings.Contains(o.Name, " or ") {
			rep.Uncertain = append(rep.Uncertain, o)
			continue
		}
		if seen[o.Name] {
			continue
		}
		seen[o.Name] = true
		deleted, err := softDeleted(opts.ArchiveDir, l.App, o.Name)
		if err != nil {
			return nil, err
		}
		if deleted {
			rep.SoftDeleted = append(rep.SoftDeleted, o.Name)
			continue
		}
		cands = append(cands, cand{o.Name, DamageGone, nil})
	}
	for _, c := range cands {
		d := Damaged{Name: c.name, Status: c.status, Missing: []string{}, Components: []ComponentResult{}, LastActivity: c.last}
		res, err := Restore(ctx, l, Request{Name: c.name, CheckMode: true, ArchiveDir: opts.ArchiveDir, Options: opts.Options, Now: opts.Now, S3: opts.S3})
		var fe *FailedError
		switch {
		case err == nil:
			d.Restorable = true
		case errors.As(err, &fe):
			d.Problem = fe.Error()
		case res == nil:
			d.Problem = err.Error()
		default:
			d.Problem = err.Error()
		}
		if res != nil {
			d.Components = res.Components
			d.RecoveryPoint = res.RecoveryPoint
			for _, cr := range res.Components {
				if cr.Status != StatusPresent || cr.Placeholder != "" {
					d.Missing = append(d.Missing, cr.Component)
				}
				if d.Status == DamageGone && cr.Backup != nil && (d.LastActivity == nil || cr.Backup.MTime.After(*d.LastActivity)) {
					t := cr.Backup.MTime
					d.LastActivity = &t
				}
			}
		}
		if len(d.Missing) == 0 && d.Problem == "" {
			continue // only optional or unbacked components missing: nothing to bring back
		}
		rep.Damaged = append(rep.Damaged, d)
	}
	sort.Slice(rep.Damaged, func(i, j int) bool { return rep.Damaged[i].Name < rep.Damaged[j].Name })
	sort.Strings(rep.SoftDeleted)
	return rep, nil
}

// softDeleted reports whether name was soft-deleted on purpose: a
// tombstone of a deletion (not a record of a forced restore's moves
// aside, not a deletion restored since) under archive_dir.
func softDeleted(archiveDir, app, name string) (bool, error) {
	if archiveDir == "" {
		return false, nil
	}
	if _, err := os.Stat(filepath.Join(archiveDir, name)); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	tombs, err := softdelete.Tombstones(filepath.Join(archiveDir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("tombstones of %s under %s: %w", name, archiveDir, err)
	}
	for _, t := range tombs {
		// A deletion some restore has brought back from is no longer
		// in effect, even while leftovers wait in quarantine for purge.
		if t.App == app && t.State != softdelete.StateRestored && t.RestoredAt == nil && t.Reason != "replaced by a forced restore" {
			return true, nil
		}
	}
	return false, nil
}

// hasPlaceholder reports whether a component of a complete instance that
// is backed up is present only as an empty directory or file (its content
// removed, or a package script's placeholder).
func hasPlaceholder(l *instance.Layout, i *instance.Instance) bool {
	for _, st := range i.Components {
		c, ok := l.Component(st.Name)
		if !ok || !st.Present || st.Problem != "" || restorable(l, c) != "" {
			continue
		}
		if k, ok := c.Kind(); ok && k.Placeholder(st.Locator) != "" {
			return true
		}
	}
	return false
}
