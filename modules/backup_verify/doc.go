// Package backupverify is the fleetsafe.instances.backup_verify Ansible module: its argument
// spec and logic. The multi-call fleetsafe binary (cmd/fleetsafe) serves it,
// as a module and as the operator's command line.
package backupverify

import _ "embed"

// Doc is the module's documentation (its ansible-doc sidecar), for the
// command line's --help.
//
//go:embed backup_verify.yml
var Doc []byte
