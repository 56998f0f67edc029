package fleettest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// ModuleCmd writes args to an arguments file in tb.TempDir() and returns
// the command that runs the module binary bin on it, as ansible-core runs
// a binary module. The caller may set its environment before running it.
func ModuleCmd(tb testing.TB, bin string, args map[string]any) *exec.Cmd {
	tb.Helper()
	data, err := json.Marshal(args)
	if err != nil {
		tb.Fatalf("%s: arguments do not encode: %v", filepath.Base(bin), err)
	}
	f := filepath.Join(tb.TempDir(), "args.json")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return exec.Command(bin, f)
}

// ModuleResult runs cmd (a ModuleCmd) and returns the JSON object it
// printed on stdout, whatever its exit status: a module that fails still
// answers with one object. It fails tb when stdout is not one.
func ModuleResult(tb testing.TB, cmd *exec.Cmd) map[string]any {
	tb.Helper()
	out, _ := cmd.Output()
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		tb.Fatalf("%s: result is not JSON: %v\n%s", filepath.Base(cmd.Path), err, out)
	}
	return res
}

// RunModule runs the module binary bin on args and returns its result.
func RunModule(tb testing.TB, bin string, args map[string]any) map[string]any {
	tb.Helper()
	return ModuleResult(tb, ModuleCmd(tb, bin, args))
}

// Library is a directory of module binaries that a test binary builds
// once, when a test first needs it (BuildFleetsafe), and shares between
// its tests; its TestMain removes it (Remove) after m.Run.
type Library struct {
	pattern string
	names   []string
	once    sync.Once
	dir     string
}

// NewLibrary returns a library of the named modules, to be built in a new
// temporary directory named after pattern (os.MkdirTemp).
func NewLibrary(pattern string, names ...string) *Library {
	return &Library{pattern: pattern, names: names}
}

// Dir builds the modules on its first call and returns their directory,
// which also holds the multi-call binary fleetsafe. It fails tb when the
// build failed, in this test or an earlier one.
func (l *Library) Dir(tb testing.TB) string {
	tb.Helper()
	l.once.Do(func() {
		dir, err := os.MkdirTemp("", l.pattern)
		if err != nil {
			tb.Fatal(err)
		}
		BuildFleetsafe(tb, dir, l.names...)
		l.dir = dir
	})
	if l.dir == "" {
		tb.Fatal("modules not built")
	}
	return l.dir
}

// Path is the binary of module (or "fleetsafe") in the library.
func (l *Library) Path(tb testing.TB, module string) string {
	tb.Helper()
	return filepath.Join(l.Dir(tb), module)
}

// Cmd is ModuleCmd for a module of the library.
func (l *Library) Cmd(tb testing.TB, module string, args map[string]any) *exec.Cmd {
	tb.Helper()
	return ModuleCmd(tb, l.Path(tb, module), args)
}

// Run runs a module of the library on args and returns its result without
// invocation (the arguments echoed back), as the attack tests print it.
func (l *Library) Run(tb testing.TB, module string, args map[string]any) map[string]any {
	tb.Helper()
	res := RunModule(tb, l.Path(tb, module), args)
	delete(res, "invocation")
	return res
}

// Remove deletes the library if it was built.
func (l *Library) Remove() {
	if l.dir != "" {
		_ = os.RemoveAll(l.dir)
	}
}

// Must fails tb when err is not nil.
func Must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
