package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
)

// Drill statuses of a component.
const (
	DrillOK     = "ok"
	DrillFailed = "failed"
)

// DrillComponent is what a restore drill found for one component.
type DrillComponent struct {
	Component string  `json:"component"`
	Type      string  `json:"type"`
	Status    string  `json:"status"`
	Backup    *Backup `json:"backup,omitempty"`
	// Refused lists the newest backups that fail backup_verify's checks
	// (a finding: the drill proves the newest backup).
	Refused []Refused `json:"refused"`
	// Files and Bytes of a restored tree, every entry compared with the
	// backup's own (names, kinds, sizes, sha256, links, modes, owners,
	// mtimes).
	Files int   `json:"files,omitempty"`
	Bytes int64 `json:"bytes,omitempty"`
	// Tables and Rows restored into the scratch database.
	Tables          int     `json:"tables,omitempty"`
	Rows            int64   `json:"rows,omitempty"`
	Reason          string  `json:"reason,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// DrillResult is one restore drill of an instance.
type DrillResult struct {
	Name string `json:"name"`
	// OK: every component that is backed up was restored from its newest
	// good backup into its scratch place and matched the backup.
	OK         bool             `json:"ok"`
	Components []DrillComponent `json:"components"`
	Notes      []string         `json:"notes"`
	// Changed: a scratch leftover of a killed drill or restore was
	// removed (the drill's own scratch places are always removed).
	Changed bool `json:"-"`
}

// Drill proves the backups of instance name end to end: every component
// that is backed up is restored from its newest backup (which must pass
// every backup_verify check: a refused newest backup fails the drill),
// through the same staging as Restore (a tree
// extracted and compared entry by entry with the backup into the
// component's staging directory; a dump restored by pg_restore into the
// component's staging database), then the staging place is removed
// whatever happens. Nothing is put in place: the live instance is never
// touched. A drill killed half-way leaves staging places that the next
// drill or restore of the instance removes (softdelete.CleanStaging)
// before anything else. It holds the instance's lock, so it never runs
// beside a restore or a deletion of the same instance.
func Drill(ctx context.Context, l *instance.Layout, name string, opts instance.Options, now time.Time) (*DrillResult, error) {
	return DrillWith(ctx, l, name, opts, now, s3store.Settings{})
}

// DrillWith is Drill with the settings that reach the buckets of backup
// rules in object storage (s3://bucket/...; empty fields take the AWS_*
// variables): an object is copied to a private temporary directory of the
// system's temporary directory for its checks and its restore, and the
// copy is gone when the drill of its component ends.
func DrillWith(ctx context.Context, l *instance.Layout, name string, opts instance.Options, now time.Time, s3 s3store.Settings) (*DrillResult, error) {
	if err := l.ValidateName(name); err != nil {
		return nil, err
	}
	if now.IsZero() {
		now = time.Now()
	}
	res := &DrillResult{Name: name, Components: []DrillComponent{}, Notes: []string{}}
	unlock, err := softdelete.LockInstance(l, name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	n, err := softdelete.CleanStaging(ctx, l, name, opts)
	if n > 0 {
		res.Changed = true
		res.Notes = append(res.Notes, fmt.Sprintf("removed %d scratch leftover(s) of an interrupted drill or restore", n))
	}
	if err != nil {
		return res, fmt.Errorf("drill of %s: a scratch leftover could not be removed: %w", name, err)
	}
	set, err := backup.Candidates(ctx, l, name, backup.Options{Discovery: opts, Now: now, S3: s3})
	if err != nil {
		return res, err
	}
	env := opts.Env()
	req := Request{Name: name, Options: opts, Now: now}
	scratch := &Result{}
	res.OK = true
	for _, c := range l.Components {
		if restorable(l, c) != "" && (c.Backup != nil && !*c.Backup || c.Optional) {
			continue // not backed up on purpose: nothing to drill
		}
		dc := DrillComponent{Component: c.Name, Type: c.Type, Refused: []Refused{}}
		start := time.Now()
		if why := restorable(l, c); why != "" {
			dc.Status, dc.Reason = DrillFailed, why
			res.OK = false
			res.Components = append(res.Components, dc)
			continue
		}
		t, err := softdelete.Target(l.App, name, c)
		if err != nil {
			return res, err
		}
		k, _ := c.Kind()
		p := &plan{c: c, k: k, t: t, chosen: -1, res: &ComponentResult{Component: c.Name, Refused: []Refused{}}}
		p.cands = set.ByComponent[c.Name]
		if err := choose(ctx, p, 0, now); err != nil {
			return res, err
		}
		dc.Refused, dc.Backup = p.res.Refused, p.res.Backup
		switch {
		case p.chosen < 0:
			dc.Status, dc.Reason = DrillFailed, p.res.Reason
		case p.chosen > 0:
			// A drill proves the newest backup: a refused one is a
			// finding even when an older one is good.
			dc.Status, dc.Reason = DrillFailed, fmt.Sprintf("the newest backup %s is refused: %s (the next good one, %s, was not drilled)",
				p.res.Refused[0].Path, p.res.Refused[0].Reason, p.res.Backup.Path)
		default:
			_, err := stage(ctx, req, p, scratch)
			if err == nil {
				dc.Status, dc.Files, dc.Bytes = DrillOK, p.files, p.bytes
				if k.Shape() == kind.Dump && c.Type == "postgresql" {
					dc.Tables, dc.Rows, err = countRows(ctx, postgresql.Conn(env), p.staged)
					if err != nil {
						dc.Status, dc.Reason = DrillFailed, fmt.Sprintf("count the rows restored from %s: %v", dc.Backup.Path, err)
					} else if p.pin != nil && (dc.Backup.Format == backup.FormatPGCustom || dc.Backup.Format == "pg_plain") {
						if err := compareRows(ctx, postgresql.Conn(env), p.staged, dc.Backup.Format, p.pin.content); err != nil {
							dc.Status, dc.Reason = DrillFailed, fmt.Sprintf("the database restored from %s does not hold the dump's rows: %v", dc.Backup.Path, err)
						}
					}
				}
			} else {
				dc.Status, dc.Reason = DrillFailed, fmt.Sprintf("the restore of %s failed: %v", dc.Backup.Path, err)
			}
			if p.staged != "" {
				if derr := k.DropStaging(ctx, env, p.staged, false); derr != nil {
					res.Notes = append(res.Notes, fmt.Sprintf("component %s: the scratch place %s could not be removed (%v); the next drill or restore of %s removes it", c.Name, p.staged, derr, name))
				}
			}
		}
		p.pin.close() // the backup held open (an object's scratch copy: removed)
		if dc.Status != DrillOK {
			res.OK = false
		}
		dc.DurationSeconds = time.Since(start).Seconds()
		res.Components = append(res.Components, dc)
	}
	res.Notes = append(res.Notes, scratch.Notes...)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, nil
}

// countRows counts the tables and rows of database db.
func countRows(ctx context.Context, pg pgdump.Conn, db string) (int, int64, error) {
	conn, err := pg.Open(ctx, db)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, `SELECT quote_ident(schemaname) || '.' || quote_ident(relname) FROM pg_stat_user_tables`)
	if err != nil {
		return 0, 0, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return 0, 0, err
		}
		tables = append(tables, t)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, 0, err
	}
	var total int64
	for _, t := range tables {
		var n int64
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			return 0, 0, fmt.Errorf("table %s: %w", t, err)
		}
		total += n
	}
	return len(tables), total, nil
}

// compareRows compares the rows of each table of database db with the
// rows the dump at file (format pg_custom or pg_plain) holds for it (its
// COPY lines, counted by pgdump.Verify or pgdump.PlainRows): a table
// restored with fewer or more rows than its dump, or missing, is an error
// naming each. A plain dump written with INSERTs holds no COPY: nothing
// is compared.
func compareRows(ctx context.Context, pg pgdump.Conn, db, format, file string) error {
	want, err := dumpRows(format, file)
	if err != nil {
		return fmt.Errorf("read the dump again: %w", err)
	}
	conn, err := pg.Open(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close()
	tables := make([]pgdump.Table, 0, len(want))
	for t := range want {
		tables = append(tables, t)
	}
	slices.SortFunc(tables, func(a, b pgdump.Table) int { return strings.Compare(a.String(), b.String()) })
	var bad []string
	for _, t := range tables {
		var n int64
		// ONLY: the dump holds a parent's own rows, its children's apart.
		err := conn.QueryRowContext(ctx, "SELECT count(*) FROM ONLY "+t.String()).Scan(&n)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v", t, err))
		case n != want[t]:
			bad = append(bad, fmt.Sprintf("%s holds %d rows, its dump %d", t, n, want[t]))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// dumpRows counts the rows of each table in the dump at file.
func dumpRows(format, file string) (map[pgdump.Table]int64, error) {
	if format == "pg_plain" {
		r, done, err := backup.OpenPlainSQL(file)
		if err != nil {
			return nil, err
		}
		rows, err := pgdump.PlainRows(r)
		if derr := done(); err == nil && derr != nil {
			err = derr
		}
		return rows, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sum, err := pgdump.Verify(f)
	if err != nil {
		return nil, err
	}
	return sum.Rows, nil
}
