// Package kinds registers every component kind fleetsafe knows: importing
// it (pkg/instance does) makes each kind available to kind.Lookup. A new
// kind adds its package here, one blank import.
package kinds

import (
	_ "github.com/fleetsafe/fleetsafe/pkg/kinds/paths"
	_ "github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
	_ "github.com/fleetsafe/fleetsafe/pkg/kinds/systemd"
)
