package postgresql

import (
	"context"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// StagePlain restores a plain SQL dump (read through b.Plain: its
// decompression and the guard that refuses what a dump never holds) into
// the staging database of t, as Stage does for a custom-format dump: run
// by psql as a temporary unprivileged role, without the dump's OWNER TO
// lines, then handed to the one owner those lines name (or, when they
// name none or several, left to the module's role with a note). A failed
// psql drops what it half-created.
func (k Kind) StagePlain(ctx context.Context, env kind.Env, t kind.Target, b kind.Backup) (string, error) {
	var seen, defACL []string
	u := unprivilegedRun{
		content: func(ctx context.Context, rc pgdump.Conn, db string) error {
			f, err := psql(ctx, rc, db, b)
			if f != nil {
				seen = f.named()
				defACL = f.defACL
			}
			return err
		},
		owners:        func() dumpOwners { return ownerOf(seen) },
		owner:         t.Component.OwnerFor(t.Instance),
		keepOwnership: true,
		defACL:        func() []string { return defACL },
	}
	return stageWith(ctx, env, t, k.Staging(t), u)
}
