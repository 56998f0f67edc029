// Package instancepurge is the fleetsafe.instances.instance_purge Ansible module: its argument
// spec and logic. The multi-call fleetsafe binary (cmd/fleetsafe) serves it,
// as a module and as the operator's command line.
package instancepurge

import _ "embed"

// Doc is the module's documentation (its ansible-doc sidecar), for the
// command line's --help.
//
//go:embed instance_purge.yml
var Doc []byte
