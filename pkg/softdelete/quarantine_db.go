package softdelete

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mholt/archives"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// compareQuarantinedDatabase checks a quarantined database against the
// verified dump in its archive before it is renamed back: the plain SQL
// script pg_dump writes of the quarantined database must equal the one
// pg_restore renders from the archived dump (schema and every row). The
// database is closed to connections in quarantine; it is opened for the
// comparison only, closed again after it, and any session other than the
// comparison's own that reached it meanwhile (counted by PostgreSQL's
// pg_stat_database.sessions) makes it unproven. It returns why the copy
// cannot be trusted, or "". An error means the database could not be
// closed to connections again.
func (r *restorer) compareQuarantinedDatabase(ctx context.Context, q QuarantineMove, comp, archive string, m *Manifest) (string, error) {
	i := slices.IndexFunc(m.Databases, func(d DumpEntry) bool { return d.Component == comp })
	if i < 0 {
		return "its archive holds no dump of it", nil
	}
	de := m.Databases[i]
	work, err := os.MkdirTemp(r.dir, ".work-compare-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	file := filepath.Join(work, comp+".pgdump")
	if err := extractEntry(ctx, archive, de.Path, file); err != nil {
		return fmt.Sprintf("its archived dump cannot be read to compare it (%v)", err), nil
	}
	if sum, err := hashPath(file); err != nil || sum != de.SHA256 {
		return fmt.Sprintf("its archived dump does not match the manifest's sha256 (%s, %v)", sum, err), nil
	}
	want, err := pgdump.ArchiveDigest(ctx, file)
	if err != nil {
		return fmt.Sprintf("its archived dump cannot be rendered to compare it (%v)", err), nil
	}
	pg := r.req.Options.PG
	db, err := pg.Open(ctx, "postgres")
	if err != nil {
		return "", err
	}
	defer db.Close()
	sessions := func() (int64, error) {
		var n int64
		err := db.QueryRowContext(ctx, "SELECT coalesce(sessions, 0) FROM pg_stat_database WHERE datname = $1", q.To).Scan(&n)
		return n, err
	}
	before, err := sessions()
	if err != nil {
		return fmt.Sprintf("PostgreSQL's session count of it cannot be read (%v), so nothing proves that no one else reaches it while it is compared", err), nil
	}
	if _, err := db.ExecContext(ctx, "ALTER DATABASE "+pgdump.QuoteIdent(q.To)+" WITH ALLOW_CONNECTIONS true"); err != nil {
		return fmt.Sprintf("it cannot be opened to compare it (%v)", err), nil
	}
	got, derr := pgdump.PlainDigest(ctx, pg, q.To)
	if _, err := db.ExecContext(context.WithoutCancel(ctx), "ALTER DATABASE "+pgdump.QuoteIdent(q.To)+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return "", fmt.Errorf("close the quarantined database %s to connections again after comparing it: %w (close it by hand: ALTER DATABASE ... WITH ALLOW_CONNECTIONS false)", q.To, err)
	}
	if derr != nil {
		return fmt.Sprintf("it cannot be dumped to compare it (%v)", derr), nil
	}
	// Every session that reached it has ended and been counted: exactly
	// one, the comparison's pg_dump.
	var after, active int64
	for deadline := time.Now().Add(5 * time.Second); ; {
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", q.To).Scan(&active); err != nil {
			return "", err
		}
		if after, err = sessions(); err != nil {
			return "", err
		}
		if (active == 0 && after >= before+1) || after > before+1 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	switch {
	case active > 0 || after > before+1:
		return fmt.Sprintf("another session reached it while it was open for the comparison (%d session(s) counted, 1 expected; %d still connected)", after-before, active), nil
	case after < before+1:
		return "PostgreSQL did not count the comparison's own session (statistics reset or off), so nothing proves that no one else reached it meanwhile", nil
	case got != want:
		return "its schema or rows differ from the verified dump in its archive (pg_dump of the quarantined database and pg_restore of the archived dump give different scripts)", nil
	}
	return "", nil
}

// extractEntry writes one entry of an archive to dest.
func extractEntry(ctx context.Context, archive, name, dest string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	found := false
	stop := errors.New("stop")
	err = archiveFormat.Extract(ctx, f, func(ctx context.Context, fi archives.FileInfo) error {
		if fi.NameInArchive != name {
			return nil
		}
		found = true
		if err := extractTo(fi, dest); err != nil {
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

// isDatabase reports whether a quarantine move is a database's.
func isDatabase(q QuarantineMove) bool { return q.Type == instance.TypePostgreSQL }
