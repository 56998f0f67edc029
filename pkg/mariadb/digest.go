package mariadb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/fleetsafe/fleetsafe/pkg/childproc"
)

// digestArgs make mariadb-dump write only what RENAME TABLE carries: the
// tables and sequences, their structure and every row in primary-key
// order, without comments (the host, the versions, the date), routines,
// triggers or events, and without the database's name anywhere.
var digestArgs = []string{"--single-transaction", "--skip-routines", "--skip-triggers", "--skip-events",
	"--skip-comments", "--skip-dump-date", "--order-by-primary", "--hex-blob", "--default-character-set=utf8mb4", "--no-create-db"}

// TableDigest is the sha256 of the tables and sequences of database name
// as mariadb-dump writes them (structure and rows, see digestArgs; views
// left out; in a quarantine, its DefinitionsTable too; without the
// tables' AUTO_INCREMENT counters, see autoIncFilter): exactly what
// Quarantine moves by RENAME TABLE. A database and
// its quarantine, unchanged, have the same digest; so a caller that keeps
// the digest taken before the quarantine (in the archive, beside the dump)
// tells a quarantine changed since (a row edited, a table dropped or
// added) before Restore renames it back.
func TableDigest(ctx context.Context, c Conn, name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", fmt.Errorf("digest: %w", err)
	}
	db, err := c.Open(ctx, "")
	if err != nil {
		return "", err
	}
	defer db.Close()
	ok, err := Exists(ctx, db, name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", &NotFoundError{Database: name}
	}
	tables, err := Tables(ctx, db, name)
	if err != nil {
		return "", err
	}
	args := append(c.clientArgs(), digestArgs...)
	for _, t := range tables {
		if !movable(t) {
			args = append(args, "--ignore-table="+name+"."+t.Name)
		}
	}
	if Reserved(name) {
		// A quarantine's kept definitions are no table of the instance's.
		args = append(args, "--ignore-table="+name+"."+DefinitionsTable)
	}
	args = append(args, "--", name)
	h := sha256.New()
	cmd := childproc.Command(ctx, "mariadb-dump", args...)
	cmd.Env = c.env(os.Environ())
	filter := &autoIncFilter{w: h}
	cmd.Stdout = filter
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := childproc.Run(cmd); err != nil {
		return "", &ToolError{Tool: "mariadb-dump", Database: name, Err: err, Stderr: strings.TrimSpace(stderr.String())}
	}
	if err := filter.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// DigestMismatchError is a quarantine whose tables are no longer those
// archived: something changed them while they were in quarantine.
type DigestMismatchError struct {
	Quarantine, Name string
	Want, Got        string
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("the quarantine %q of database %q changed since it was archived (table digest %s, archived %s)", e.Quarantine, e.Name, e.Got, e.Want)
}

// Hint tells the operator what to do.
func (e *DigestMismatchError) Hint() string {
	return "nothing was renamed back; restore from the archive's dump instead, or inspect the quarantine database by hand"
}

// CheckQuarantine compares the tables of quarantine with want, the
// TableDigest taken of name before it was quarantined: nil when equal, a
// *DigestMismatchError when not.
func CheckQuarantine(ctx context.Context, c Conn, quarantine, name, want string) error {
	got, err := TableDigest(ctx, c, quarantine)
	if err != nil {
		return fmt.Errorf("check quarantine %q of %q: %w", quarantine, name, err)
	}
	if got != want {
		return &DigestMismatchError{Quarantine: quarantine, Name: name, Want: want, Got: got}
	}
	return nil
}
