package mariadb

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
)

// autoIncOption is the AUTO_INCREMENT table option of a CREATE TABLE's
// closing line as mariadb-dump writes it (") ENGINE=InnoDB
// AUTO_INCREMENT=16 DEFAULT CHARSET=…").
var (
	tableOptionsLine = regexp.MustCompile(`^\) ENGINE=`)
	autoIncOption    = regexp.MustCompile(` AUTO_INCREMENT=[0-9]+`)
)

// maxOptionsLine bounds what autoIncFilter holds of one line; a longer
// line starting with ')' passes through as it is.
const maxOptionsLine = 64 << 10

// autoIncFilter passes mariadb-dump's output to w without the
// AUTO_INCREMENT option of each table: InnoDB keeps the values a bulk
// insert reserved but never used (INSERT … SELECT reserves 1, 2, 4, 8…)
// in memory only, and recomputes the counter from what it persisted when
// the table is opened again, so one table with the same rows shows 16 at
// one moment and 13 the next, unchanged (found by internal/model: the
// archived dump said 16, the quarantine 13). The rows and the structure
// are compared; the counter is not.
//
// Only lines that start with ')' are held, at most maxOptionsLine bytes
// each; every other byte goes through at once, whatever the chunking.
type autoIncFilter struct {
	w       io.Writer
	buf     []byte
	hold    bool // buf holds the start of a line beginning with ')'
	midLine bool // the next byte is not the first of a line
}

func (f *autoIncFilter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if f.hold {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				f.buf = append(f.buf, p...)
				if len(f.buf) > maxOptionsLine {
					if err := f.release(false, false); err != nil {
						return 0, err
					}
				}
				return n, nil
			}
			f.buf = append(f.buf, p[:i+1]...)
			p = p[i+1:]
			if err := f.release(len(f.buf) <= maxOptionsLine, true); err != nil {
				return 0, err
			}
			continue
		}
		if !f.midLine && p[0] == ')' {
			f.hold = true
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			f.midLine = true
			_, err := f.w.Write(p)
			return n, err
		}
		if _, err := f.w.Write(p[:i+1]); err != nil {
			return 0, err
		}
		f.midLine = false
		p = p[i+1:]
	}
	return n, nil
}

// release writes what is held: with strip, a whole line of at most
// maxOptionsLine bytes, without its AUTO_INCREMENT option when it closes
// a CREATE TABLE; else as it is. ended says the line ended there; when
// not, the rest of that line follows unheld.
func (f *autoIncFilter) release(strip, ended bool) error {
	line := f.buf
	if strip && tableOptionsLine.Match(line) {
		line = autoIncOption.ReplaceAll(line, nil)
	}
	_, err := f.w.Write(line)
	f.buf, f.hold, f.midLine = f.buf[:0], false, !ended
	return err
}

// Close writes a last line held without its newline.
func (f *autoIncFilter) Close() error {
	if !f.hold {
		return nil
	}
	return f.release(len(f.buf) <= maxOptionsLine, true)
}

// counters reads the AUTO_INCREMENT counter of each table of database
// name that has one.
func counters(ctx context.Context, db *sql.DB, name string) (map[string]uint64, error) {
	rows, err := db.QueryContext(ctx, "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND AUTO_INCREMENT IS NOT NULL", name)
	if err != nil {
		return nil, fmt.Errorf("read the AUTO_INCREMENT counters of %s: %w", name, err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var t string
		var n uint64
		if err := rows.Scan(&t, &n); err != nil {
			return nil, fmt.Errorf("read the AUTO_INCREMENT counters of %s: %w", name, err)
		}
		out[t] = n
	}
	return out, rows.Err()
}

// alignCounters gives each table of quarantine the AUTO_INCREMENT counter
// its table has in archived (the archived dump loaded in a scratch
// database), where they differ: a quarantine whose rows are the archived
// ones then comes back with the counter a restore from the archive gives,
// so that no value the archived table had handed out (or reserved) is
// handed out again. InnoDB never sets a counter below the largest value
// present plus one.
func alignCounters(ctx context.Context, db *sql.DB, quarantine, archived string) error {
	have, err := counters(ctx, db, quarantine)
	if err != nil {
		return err
	}
	want, err := counters(ctx, db, archived)
	if err != nil {
		return err
	}
	tables := make([]string, 0, len(want))
	for t := range want {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	for _, t := range tables {
		if n, ok := have[t]; !ok || n == want[t] {
			continue
		}
		q := "ALTER TABLE " + QuoteIdent(quarantine) + "." + QuoteIdent(t) + " AUTO_INCREMENT = " + strconv.FormatUint(want[t], 10)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("give table %s of %s the archived AUTO_INCREMENT counter %d: %w", t, quarantine, want[t], err)
		}
	}
	return nil
}
