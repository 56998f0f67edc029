package postgresql

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// CompareQuarantined checks a quarantined database against the verified
// dump of its archive before it is renamed back: the plain SQL script
// pg_dump writes of the quarantined database must equal the one
// pg_restore renders from the archived dump (schema and every row). The
// database is closed to connections in quarantine; it is opened for the
// comparison only, closed again after it (a database found open, a live
// one at a relocation's new place, is left open), and any session other than the
// comparison's own that reached it meanwhile (counted by PostgreSQL's
// pg_stat_database.sessions) makes it unproven. An error means the
// database could not be closed to connections again.
func (Kind) CompareQuarantined(ctx context.Context, env kind.Env, m kind.Move, dump string) (string, error) {
	want, err := pgdump.ArchiveDigest(ctx, dump)
	if err != nil {
		return fmt.Sprintf("its archived dump cannot be rendered to compare it (%v)", err), nil
	}
	pg := Conn(env)
	db, err := pg.Open(ctx, "postgres")
	if err != nil {
		return "", err
	}
	defer db.Close()
	sessions := func() (int64, error) {
		var n int64
		err := db.QueryRowContext(ctx, "SELECT coalesce(sessions, 0) FROM pg_stat_database WHERE datname = $1", m.To).Scan(&n)
		return n, err
	}
	before, err := sessions()
	if err != nil {
		return fmt.Sprintf("PostgreSQL's session count of it cannot be read (%v), so nothing proves that no one else reaches it while it is compared", err), nil
	}
	// A database already open to connections (a live one at a
	// relocation's new place) is compared as it is and left open: only a
	// closed one is opened for the comparison and closed again.
	var open bool
	if err := db.QueryRowContext(ctx, "SELECT datallowconn FROM pg_database WHERE datname = $1", m.To).Scan(&open); err != nil {
		return fmt.Sprintf("it cannot be found to compare it (%v)", err), nil
	}
	if !open {
		if _, err := db.ExecContext(ctx, "ALTER DATABASE "+pgdump.QuoteIdent(m.To)+" WITH ALLOW_CONNECTIONS true"); err != nil {
			return fmt.Sprintf("it cannot be opened to compare it (%v)", err), nil
		}
	}
	got, derr := pgdump.PlainDigest(ctx, pg, m.To)
	if !open {
		if _, err := db.ExecContext(context.WithoutCancel(ctx), "ALTER DATABASE "+pgdump.QuoteIdent(m.To)+" WITH ALLOW_CONNECTIONS false"); err != nil {
			return "", fmt.Errorf("close the quarantined database %s to connections again after comparing it: %w (close it by hand: ALTER DATABASE ... WITH ALLOW_CONNECTIONS false)", m.To, err)
		}
	}
	if derr != nil {
		return fmt.Sprintf("it cannot be dumped to compare it (%v)", derr), nil
	}
	// Every session that reached it has ended and been counted: exactly
	// one, the comparison's pg_dump.
	var after, active int64
	for deadline := time.Now().Add(5 * time.Second); ; {
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", m.To).Scan(&active); err != nil {
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
