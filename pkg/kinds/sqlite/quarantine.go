package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/paths"
	"github.com/fleetsafe/fleetsafe/pkg/sqlitedb"
)

func (Kind) QuarantineSource(st kind.State) (string, bool) { return st.Locator, true }
func (Kind) MoveLocator(m kind.Move) string                { return m.From }

// QuarantineTarget is the deletion's trash directory in the database's
// own parent, as for a file.
func (Kind) QuarantineTarget(source, id string) string { return paths.TrashTarget(source, id) }

// TrashNames: the file and the companions that went with it.
func (Kind) TrashNames(m kind.Move) []string {
	out := []string{filepath.Base(m.To)}
	for _, suf := range sqlitedb.Companions {
		if _, err := os.Lstat(m.To + suf); err == nil {
			out = append(out, filepath.Base(m.To)+suf)
		}
	}
	return out
}

// Quarantine moves the database with its companions into the trash
// (refused while a process holds any of them open).
func (Kind) Quarantine(ctx context.Context, _ kind.Env, m kind.Move) error {
	if err := os.MkdirAll(filepath.Dir(m.To), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(m.To), err)
	}
	return sqlitedb.Move(ctx, m.From, m.To)
}

// Unquarantine moves it back, with its companions.
func (Kind) Unquarantine(ctx context.Context, _ kind.Env, m kind.Move) error {
	return sqlitedb.Move(ctx, m.To, m.From)
}

func (Kind) Tidy(m kind.Move) { paths.TidyTrash(m) }

func (Kind) Held(_ context.Context, _ kind.Env, m kind.Move) (bool, error) {
	_, err := os.Lstat(m.To)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	return err == nil, nil
}

// CompareQuarantined compares the logical digest (schema and rows, with
// the -wal) of the quarantined database with that of the archived copy.
func (Kind) CompareQuarantined(ctx context.Context, _ kind.Env, m kind.Move, dump string) (string, error) {
	want, err := sqlitedb.Digest(ctx, dump)
	if err != nil {
		return fmt.Sprintf("its archived copy cannot be read (%v)", err), nil
	}
	if err := sqlitedb.CheckDigest(ctx, m.To, want); err != nil {
		return err.Error(), nil
	}
	return "", nil
}

func (Kind) PurgeLabel() string { return "quarantine" }

func (Kind) PurgeCheck(context.Context, kind.Env, kind.Move) (bool, error) {
	return false, errors.New("a sqlite component is purged with its trash entry")
}

func (Kind) PurgeMark(context.Context, kind.Env, kind.Move) error {
	return errors.New("a sqlite component is purged with its trash entry")
}

func (Kind) PurgeRemove(context.Context, kind.Env, kind.Move) error {
	return errors.New("a sqlite component is purged with its trash entry")
}

func (Kind) PurgeLeft(m kind.Move) string { return m.To }
