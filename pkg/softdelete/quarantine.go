package softdelete

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

// TrashDir is the quarantine directory created in each component's parent.
const TrashDir = kind.TrashDirName

type hasher struct{ hash.Hash }

func newHasher() *hasher                       { return &hasher{sha256.New()} }
func (h *hasher) hex() string                  { return hex.EncodeToString(h.Sum(nil)) }
func teeHash(r io.Reader, h *hasher) io.Reader { return io.TeeReader(r, h) }
func drain(r io.Reader, h *hasher) error {
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

// quarantine performs every move of a tombstone that is not done yet.
func quarantine(ctx context.Context, req Request, t *Tombstone) error {
	if _, err := moveAll(ctx, req, t); err != nil {
		return err
	}
	t.State = StateQuarantined
	return t.write()
}

// moveAll performs the moves of a tombstone in order, skipping those
// already done, and returns how many are done when it stops.
func moveAll(ctx context.Context, req Request, t *Tombstone) (int, error) {
	env := req.Options.Env()
	for i, m := range t.Components {
		k, err := kindOf(m.Type)
		if err == nil {
			err = k.Quarantine(ctx, env, m.move())
		}
		if err == nil {
			// Before the tombstone says quarantined: a run killed here
			// records it on the next run, which redoes this step.
			err = keepRetention(ctx, env, k, t, m)
		}
		if err != nil {
			return i, fmt.Errorf("quarantine component %s: %w", m.Component, err)
		}
		req.step("quarantine:" + m.Component)
	}
	return len(t.Components), nil
}

// moveAllBack undoes the moves of a tombstone, last first; moves not done
// (or already undone) are skipped. What quarantine left empty goes
// (Kind.Tidy).
func moveAllBack(ctx context.Context, req Request, t *Tombstone) error {
	env := req.Options.Env()
	var errs []error
	for i := len(t.Components) - 1; i >= 0; i-- {
		m := t.Components[i]
		k, err := kindOf(m.Type)
		if err == nil {
			err = k.Unquarantine(ctx, env, m.move())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("move component %s back: %w", m.Component, err))
			continue
		}
		k.Tidy(m.move())
	}
	return errors.Join(errs...)
}
