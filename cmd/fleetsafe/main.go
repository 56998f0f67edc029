// Command fleetsafe is every fleetsafe.instances module in one binary, and
// the operator's command line for the day AWX is down.
//
// Invoked under a module's name (build/library/instance_info, or the copy
// ansible-core makes on the target, AnsiballZ_instance_info) it is that
// module; `fleetsafe module <name> <args-file>|-` is the same by argument
// (the collection's action plugin runs its cached copy so); otherwise it is
// a command line: `fleetsafe --help`.
package main

import (
	"context"
	"os"
)

func main() { os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr)) }
