// Package kinds registers every component kind fleetsafe knows: importing
// it (pkg/instance does) makes each kind available to kind.Lookup.
//
// Adding a kind touches:
//   - its package, pkg/kinds/<kind>/, implementing kind.Kind (and
//     kind.RestoreTester if its backups can be test-restored), checked at
//     compile time with var _ kind.Kind = …, registered from init;
//   - one blank import below;
//   - if it needs connection settings: internal/modutil (the module
//     parameters, stored in instance.Options.Settings under the kind's
//     type) and the modules' sidecar docs;
//   - its docs and tests.
//
// Nothing in pkg/instance or pkg/softdelete changes: layouts, discovery,
// soft delete, restore, purge and RESTORE.md ask the kind.
package kinds

import (
	_ "github.com/fleetsafe/fleetsafe/pkg/kinds/mysql"
	_ "github.com/fleetsafe/fleetsafe/pkg/kinds/paths"
	_ "github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
	_ "github.com/fleetsafe/fleetsafe/pkg/kinds/sqlite"
	_ "github.com/fleetsafe/fleetsafe/pkg/kinds/systemd"
)
