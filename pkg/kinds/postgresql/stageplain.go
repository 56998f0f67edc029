package postgresql

import (
	"context"
	"fmt"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

// StagePlain restores a plain SQL dump (read through b.Plain: its
// decompression and the guard that refuses what a dump never holds) into
// the staging database of t, as Stage does for a custom-format dump; a
// failed psql drops what it half-created.
func (k Kind) StagePlain(ctx context.Context, env kind.Env, t kind.Target, b kind.Backup) (string, error) {
	pg := Conn(env)
	stage := k.Staging(t)
	if err := createStagingDatabase(ctx, pg, stage); err != nil {
		return "", err
	}
	if err := psql(ctx, pg, stage, b); err != nil {
		if _, derr := dropStagingDatabase(ctx, pg, stage); derr != nil {
			return stage, fmt.Errorf("restore component %s into staging database %s: %w; dropping the half-restored staging database also failed: %v", t.Component.Name, stage, err, derr)
		}
		return "", fmt.Errorf("restore component %s into staging database %s: %w (the half-restored staging database was dropped; %s was never created)", t.Component.Name, stage, err, t.Locator)
	}
	return stage, nil
}
