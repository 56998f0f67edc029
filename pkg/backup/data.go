package backup

import (
	"context"
	"fmt"

	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// CheckData fails when a dump holds no table data while the live database
// has rows, or while the previous dump had data.
const CheckData = "data"

// checkData runs the data check on every newest dump read without error:
// a dump with no table data (a schema-only dump) is a finding when the
// live database has rows (asked cheaply: a planner estimate, then one row
// per table) or when the previous dump of the rule had data.
func checkData(ctx context.Context, jobs []fileJob, pg pgdump.Conn) error {
	for _, j := range jobs {
		st, r := j.state, j.state.result
		base := CheckResult{Component: st.rule.Component, Rule: st.rule.Path, File: j.file.path, Check: CheckData}
		switch r.data {
		case dataUnknown:
			continue
		case dataSome:
			st.checks = append(st.checks, ok(base, "holds table data"))
			continue
		}
		label := ruleLabel(st.rule)
		// First the live database: rows there and none in the dump.
		var liveErr error
		liveEmpty := false
		if st.database != "" && st.inst != nil {
			if live, found := st.inst.State(st.rule.Component); found && live.Present {
				table, err := anyRows(ctx, pg, st.database)
				switch {
				case err == nil && table != "":
					st.checks = append(st.checks, bad(base, StatusFailed, &NoDataError{Path: j.file.path, Rule: label,
						Why: fmt.Sprintf("the live database %s has rows (in %s at least)", st.database, table)}))
					continue
				case err == nil:
					liveEmpty = true
				case ctx.Err() != nil:
					return ctx.Err()
				default:
					liveErr = err
				}
			}
		}
		// Then the previous dump: data there and none now is a loss, even
		// when the live database is empty too.
		if len(st.files) > 1 {
			prev := st.files[1]
			if pr, err := checkBackup(ctx, prev.rem, prev.path, st.rule.Format, false); err == nil && pr.data == dataSome {
				why := fmt.Sprintf("the previous dump %s had table data", prev.path)
				if liveEmpty {
					why += fmt.Sprintf(" (the live database %s has no rows now: were they deleted?)", st.database)
				}
				st.checks = append(st.checks, bad(base, StatusFailed, &NoDataError{Path: j.file.path, Rule: label, Why: why}))
				continue
			}
		}
		switch {
		case liveEmpty:
			st.checks = append(st.checks, ok(base, fmt.Sprintf("no table data, and the live database %s has no rows either", st.database)))
		case liveErr != nil:
			st.checks = append(st.checks, bad(base, StatusWarning, &NoDataError{Path: j.file.path, Rule: label,
				Why: fmt.Sprintf("whether it should cannot be told: the live database %s could not be asked (%v) and no previous dump had data", st.database, liveErr)}))
		case st.database != "":
			st.checks = append(st.checks, bad(base, StatusWarning, &NoDataError{Path: j.file.path, Rule: label,
				Why: fmt.Sprintf("whether it should cannot be told: the live database %s is not present and no previous dump had data", st.database)}))
		default:
			st.checks = append(st.checks, ok(base, "no table data; no live database to compare with and no previous dump with data"))
		}
	}
	return nil
}

// anyRows returns a table of db that has at least one row, or "" when
// none has.
func anyRows(ctx context.Context, pg pgdump.Conn, db string) (string, error) {
	conn, err := pg.Open(ctx, db)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	const tables = `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
		ORDER BY c.reltuples DESC`
	rows, err := conn.QueryContext(ctx, tables)
	if err != nil {
		return "", err
	}
	var list [][2]string
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			rows.Close()
			return "", err
		}
		list = append(list, [2]string{s, t})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", err
	}
	for _, t := range list {
		var has bool
		q := "SELECT EXISTS (SELECT 1 FROM " + pgdump.QuoteIdent(t[0]) + "." + pgdump.QuoteIdent(t[1]) + ")"
		if err := conn.QueryRowContext(ctx, q).Scan(&has); err != nil {
			return "", err
		}
		if has {
			return t[0] + "." + t[1], nil
		}
	}
	return "", nil
}
