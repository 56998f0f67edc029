package instance

import (
	"context"

	"github.com/fleetsafe/fleetsafe/pkg/kinds/systemd"
)

// StopUnit stops a systemd unit through systemctl. It fails when no running
// systemd answers.
func StopUnit(ctx context.Context, opts Options, unit string) error {
	return systemd.Stop(ctx, opts.withDefaults().Env(), unit)
}
