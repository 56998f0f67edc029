package ansible

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Modules is the set of modules one multi-call binary serves.
type Modules []Module

// Get returns the module called name.
func (ms Modules) Get(name string) (Module, bool) {
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return Module{}, false
}

// Names returns the names of the modules, in order.
func (ms Modules) Names() []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// remotePrefix is what ansible-core puts before a binary module's file
// name when it copies the module to the target's temporary directory
// (ActionBase._execute_module: <tmp>/AnsiballZ_<name>, then runs
// `<tmp>/AnsiballZ_<name> <tmp>/args`).
const remotePrefix = "AnsiballZ_"

// ModuleName returns the module name a process was invoked as: the base
// name of argv0, without the prefix ansible-core adds when it copies a
// binary module to the target. A copy or link of the binary named after a
// module (build/library/<module>) is thereby that module, whether
// ansible-core runs it or a person does.
func ModuleName(argv0 string) string {
	return strings.TrimPrefix(filepath.Base(argv0), remotePrefix)
}

// ModuleCommand is the argument that runs a module by name rather than by
// argv[0]: `fleetsafe module <name> <args-file>|-`. The collection's action
// plugin runs the cached binary this way, with the arguments on stdin (`-`)
// so that no args file is written on the target.
const ModuleCommand = "module"

// Serve runs the module a multi-call process is meant to run, if any: the
// module argv[0] names, or `<binary> module <name> <args-file>|-`. It
// reports false when args name no module (a command line for a person).
func (ms Modules) Serve(ctx context.Context, args []string, stdin io.Reader, w io.Writer) (code int, served bool) {
	if len(args) == 0 {
		return 0, false
	}
	if m, ok := ms.Get(ModuleName(args[0])); ok {
		return ExecuteIO(ctx, m, args, stdin, w), true
	}
	if len(args) < 2 || args[1] != ModuleCommand {
		return 0, false
	}
	if len(args) != 4 {
		return writeFailure(w, fmt.Sprintf("usage: %s %s <module> <args-file>|- (modules: %s)",
			filepath.Base(args[0]), ModuleCommand, strings.Join(ms.Names(), ", "))), true
	}
	m, ok := ms.Get(args[2])
	if !ok {
		return writeFailure(w, fmt.Sprintf("%s %s: no module %q in this binary (modules: %s)",
			filepath.Base(args[0]), ModuleCommand, args[2], strings.Join(ms.Names(), ", "))), true
	}
	return ExecuteIO(ctx, m, []string{args[2], args[3]}, stdin, w), true
}

// ExecuteIO is Execute with the args file "-" read from stdin.
func ExecuteIO(ctx context.Context, m Module, args []string, stdin io.Reader, w io.Writer) int {
	return m.execute(ctx, args, stdin, w)
}

// readArgsFile reads the args file ansible-core names, or stdin for "-".
func readArgsFile(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		if stdin == nil {
			stdin = os.Stdin
		}
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}
