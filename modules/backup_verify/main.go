// Command backup_verify is the fleetsafe.instances.backup_verify Ansible module. Its logic
// lives in module.go; this is the process entry point.
package main

import (
	"context"
	"os"

	"github.com/fleetsafe/fleetsafe/pkg/ansible"
)

func main() { os.Exit(ansible.Execute(context.Background(), Module, os.Args, os.Stdout)) }
