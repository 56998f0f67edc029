package pgdump

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/childproc"
)

// RestoreExcept runs the real pg_restore of file into an existing, empty
// database, as Restore does, without the table of contents entries whose
// dump ids are in skip (pg_restore -l, filtered, given back with -L).
// With nothing to skip it is Restore.
func RestoreExcept(ctx context.Context, c Conn, database, file string, skip []int64) error {
	if len(skip) == 0 {
		return Restore(ctx, c, database, file)
	}
	cmd := childproc.Command(ctx, "pg_restore", "--list", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	list, err := childproc.Output(cmd)
	if err != nil {
		return fmt.Errorf("pg_restore --list %s: %w: %s", file, err, strings.TrimSpace(stderr.String()))
	}
	out, err := filterList(string(list), skip)
	if err != nil {
		return fmt.Errorf("pg_restore --list %s: %w", file, err)
	}
	tmp, err := os.CreateTemp("", "fleetsafe-restore-list-*")
	if err != nil {
		return fmt.Errorf("write the restore list of %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(out); err != nil {
		tmp.Close()
		return fmt.Errorf("write the restore list of %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write the restore list of %s: %w", file, err)
	}
	return run(ctx, c, "pg_restore", "--no-password", "--exit-on-error", "--no-owner", "--use-list="+tmp.Name(), "--dbname="+DBNameArg(database), file)
}

// filterList removes from a pg_restore --list the lines of the entries in
// skip ("<id>; …"); each must be found, once.
func filterList(list string, skip []int64) (string, error) {
	want := map[int64]int{}
	for _, id := range skip {
		want[id] = 0
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(list, "\n") {
		if i := strings.IndexByte(line, ';'); i > 0 {
			if id, err := strconv.ParseInt(line[:i], 10, 64); err == nil {
				if _, ok := want[id]; ok {
					want[id]++
					continue
				}
			}
		}
		b.WriteString(line)
	}
	for id, n := range want {
		if n != 1 {
			return "", fmt.Errorf("entry %d appears %d times in the list, want once", id, n)
		}
	}
	return b.String(), nil
}
