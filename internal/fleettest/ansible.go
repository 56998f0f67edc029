package fleettest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/fleetsafe/fleetsafe/internal/testhooks"
)

// RepoRoot returns the repository root, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// AnsiblePlaybook returns the ansible-playbook of FLEETSAFE_ANSIBLE_VENV
// when set (a virtualenv of another ansible-core, as `make test-matrix`
// makes), else of the project virtualenv, or of PATH. Without one the test
// is skipped, or fails when FLEETSAFE_REQUIRE_ANSIBLE=1 (as `make test`
// sets).
func AnsiblePlaybook(tb testing.TB) string {
	tb.Helper()
	if v := os.Getenv("FLEETSAFE_ANSIBLE_VENV"); v != "" {
		p := filepath.Join(v, "bin", "ansible-playbook")
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("FLEETSAFE_ANSIBLE_VENV=%s: %v", v, err)
		}
		return p
	}
	venv := filepath.Join(RepoRoot(), ".venv", "bin", "ansible-playbook")
	if _, err := os.Stat(venv); err == nil {
		return venv
	}
	if p, err := exec.LookPath("ansible-playbook"); err == nil {
		return p
	}
	if os.Getenv("FLEETSAFE_REQUIRE_ANSIBLE") == "1" {
		tb.Fatal("ansible-playbook is required (FLEETSAFE_REQUIRE_ANSIBLE=1) but not found; run `make venv`")
	}
	tb.Skip("ansible-playbook not found; run `make venv`")
	return ""
}

// python returns a Python that has PyYAML: the project virtualenv's, else
// python3 of PATH.
func python() string {
	venv := filepath.Join(RepoRoot(), ".venv", "bin", "python")
	if _, err := os.Stat(venv); err == nil {
		return venv
	}
	return "python3"
}

// ModuleNames returns the name of every module of the repository.
func ModuleNames(tb testing.TB) []string {
	tb.Helper()
	entries, err := os.ReadDir(filepath.Join(RepoRoot(), "modules"))
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// BuildFleetsafe compiles the multi-call binary (cmd/fleetsafe), with the
// test hooks (testhooks.Tag) as `make build` does, into
// dir/fleetsafe and makes dir/<name> a hard link to it for each named
// module: a file named after a module is that module, as build/library
// holds them. It returns the binary's path.
//
// When FLEETSAFE_TEST_FLEETSAFE names a binary (make gotest and
// core-SERIES set it to build/library/fleetsafe, which `make build` has
// just built from the same tree with the same tags), that binary is copied
// instead: a link of the 29 MB binary costs a second or two of CPU, and
// some forty tests build it.
func BuildFleetsafe(tb testing.TB, dir string, names ...string) string {
	tb.Helper()
	bin := filepath.Join(dir, "fleetsafe")
	if pre := os.Getenv("FLEETSAFE_TEST_FLEETSAFE"); pre != "" {
		if err := copyExecutable(pre, bin); err != nil {
			tb.Fatalf("FLEETSAFE_TEST_FLEETSAFE: %v (make build builds it)", err)
		}
	} else {
		cmd := exec.Command("go", "build", "-tags", testhooks.Tag, "-o", bin, "./cmd/fleetsafe")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("build cmd/fleetsafe: %v\n%s", err, out)
		}
	}
	for _, n := range names {
		_ = os.Remove(filepath.Join(dir, n))
		if err := os.Link(bin, filepath.Join(dir, n)); err != nil {
			tb.Fatal(err)
		}
	}
	return bin
}

// BuildModules builds the named modules (all of them when none is given)
// into a fresh library directory, with their sidecar docs, and the
// fleetsafe.instances collection under its collections/ as `make build`
// lays it out.
func BuildModules(tb testing.TB, names ...string) string {
	tb.Helper()
	root := RepoRoot()
	if len(names) == 0 {
		names = ModuleNames(tb)
	}
	lib := tb.TempDir()
	bin := BuildFleetsafe(tb, lib, names...)
	for _, n := range names {
		doc, err := os.ReadFile(filepath.Join(root, "modules", n, n+".yml"))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lib, n+".yml"), doc, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	// The same modules as the fleetsafe.instances collection, for FQCNs:
	// the release tarball itself when FLEETSAFE_COLLECTION_TARBALL names
	// one (`make core-2.21`), installed as a user installs it.
	if tarball := os.Getenv("FLEETSAFE_COLLECTION_TARBALL"); tarball != "" {
		if err := InstallCollection(tarball, filepath.Join(lib, "collections")); err != nil {
			tb.Fatal(err)
		}
		return lib
	}
	coll := filepath.Join(lib, "collections", "ansible_collections", "fleetsafe", "instances")
	if err := os.CopyFS(coll, os.DirFS(filepath.Join(root, "collection"))); err != nil {
		tb.Fatal(err)
	}
	if err := CollectionLayout(coll, bin); err != nil {
		tb.Fatal(err)
	}
	return lib
}

// InstallCollection installs a collection tarball into the collections
// path dir with ansible-galaxy (of FLEETSAFE_ANSIBLE_VENV when set, like
// AnsiblePlaybook), and checks that it holds the build for this machine.
func InstallCollection(tarball, dir string) error {
	abs, err := filepath.Abs(tarball)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("FLEETSAFE_COLLECTION_TARBALL: %w (make collection builds it)", err)
	}
	galaxy := "ansible-galaxy"
	if v := os.Getenv("FLEETSAFE_ANSIBLE_VENV"); v != "" {
		galaxy = filepath.Join(v, "bin", "ansible-galaxy")
	} else if p := filepath.Join(RepoRoot(), ".venv", "bin", "ansible-galaxy"); fileExists(p) {
		galaxy = p
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "empty.cfg")
	if err := os.WriteFile(cfg, []byte("[defaults]\n"), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(galaxy, "collection", "install", abs, "-p", dir, "--force")
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+cfg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ansible-galaxy collection install %s: %w\n%s", abs, err, out)
	}
	bin := filepath.Join(dir, "ansible_collections", "fleetsafe", "instances", "binaries", "linux_"+runtime.GOARCH, "fleetsafe")
	if !fileExists(bin) {
		return fmt.Errorf("the tarball %s holds no %s", abs, bin)
	}
	return nil
}

// copyExecutable copies the file src to dst, mode 0755: a copy, not a
// link, so that a test that changes its binary changes no other's.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// CollectionLayout puts a built binary and the modules' docs into the
// collection at coll as `make build` does: binaries/linux_amd64/fleetsafe
// (the one binary the action plugin copies to targets; outside plugins/,
// which ansible-doc, ansible-test and galaxy-importer read as text) and
// plugins/modules/<name>.py, each module's documentation in a doc-only
// Python file that scripts/docstubs.py writes from its sidecar.
func CollectionLayout(coll, bin string) error {
	dir := filepath.Join(coll, "binaries", "linux_amd64")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Link(bin, filepath.Join(dir, "fleetsafe")); err != nil {
		return err
	}
	stubs, err := docStubs()
	if err != nil {
		return err
	}
	mods := filepath.Join(coll, "plugins", "modules")
	if err := os.MkdirAll(mods, 0o755); err != nil {
		return err
	}
	for name, data := range stubs {
		if err := os.WriteFile(filepath.Join(mods, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// docStubs runs scripts/docstubs.py once per test binary, into a directory
// of its own, and keeps the files it wrote (name to content): the sidecars
// do not change while the tests run.
var docStubs = sync.OnceValues(func() (map[string][]byte, error) {
	dir, err := os.MkdirTemp("", "fleetsafe-docstubs")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	root := RepoRoot()
	out := filepath.Join(dir, "modules")
	cmd := exec.Command(python(), filepath.Join(root, "scripts", "docstubs.py"), filepath.Join(root, "modules"), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("module doc stubs: %w\n%s", err, b)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return nil, err
	}
	stubs := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil {
			return nil, err
		}
		stubs[e.Name()] = data
	}
	if len(stubs) == 0 {
		return nil, fmt.Errorf("module doc stubs: scripts/docstubs.py wrote nothing into %s", out)
	}
	return stubs, nil
})

// Playbook is the outcome of one ansible-playbook run.
type Playbook struct {
	Output string
	Err    error
}

// RunPlaybook runs ansible-playbook on localhost with the given library
// directory and extra vars, and returns its output.
func RunPlaybook(tb testing.TB, library, playbook string, extraVars map[string]any, env ...string) Playbook {
	tb.Helper()
	return RunPlaybookArgs(tb, library, []string{"-i", filepath.Join(RepoRoot(), "playbooks", "inventory", "localhost.yml"), playbook}, extraVars, env...)
}

// RunPlaybookArgs runs ansible-playbook with the given arguments (inventory,
// limit, playbook) and extra vars.
func RunPlaybookArgs(tb testing.TB, library string, args []string, extraVars map[string]any, env ...string) Playbook {
	tb.Helper()
	bin := AnsiblePlaybook(tb)
	vars, err := json.Marshal(extraVars)
	if err != nil {
		tb.Fatal(err)
	}
	args = append([]string{"-e", string(vars)}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(),
		"ANSIBLE_LIBRARY="+library,
		"ANSIBLE_COLLECTIONS_PATH="+filepath.Join(library, "collections"),
		"ANSIBLE_CONFIG="+filepath.Join(RepoRoot(), "ansible.cfg"),
		"ANSIBLE_LOCAL_TEMP="+tb.TempDir(),
		"ANSIBLE_NOCOLOR=1",
	)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err = cmd.Run()
	return Playbook{Output: out.String(), Err: err}
}
