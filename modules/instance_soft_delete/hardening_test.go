package instancesoftdelete

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// runModule runs the built module binary on args, as ansible-core would,
// optionally through a shell prefix (ulimit) or as another user.
func runModule(t *testing.T, bin string, args map[string]any, env []string, shell string, cred *syscall.Credential) (map[string]any, string) {
	t.Helper()
	data, err := json.Marshal(args)
	require.NoError(t, err)
	argsFile := filepath.Join(t.TempDir(), "args.json")
	require.NoError(t, os.WriteFile(argsFile, data, 0o644))
	var cmd *exec.Cmd
	if shell != "" {
		cmd = exec.Command("sh", "-c", shell+` && exec "$0" "$1"`, bin, argsFile)
	} else {
		cmd = exec.Command(bin, argsFile)
	}
	cmd.Env = append(os.Environ(), env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	out, _ := cmd.Output()
	var res map[string]any
	require.NoError(t, json.Unmarshal(out, &res), "one JSON object: %s", out)
	return res, string(out)
}

func TestFailingDisk_ArchiveCannotBeWritten(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_soft_delete")
	f := fleettest.New(t, false)
	require.NoError(t, f.AddInstance(t.Context(), "acme"))
	for i := range 20 {
		require.NoError(t, os.WriteFile(filepath.Join(f.Path("data", "acme"), fmt.Sprintf("big-%d.bin", i)), randomBytes(t, 64<<10), 0o644))
	}
	before := f.Snapshot(t, "acme")
	archives := filepath.Join(t.TempDir(), "archives")
	// RLIMIT_FSIZE of 256 KiB (512 blocks of 512 bytes): the archive cannot be written in full, as
	// on a full disk.
	res, out := runModule(t, filepath.Join(lib, "instance_soft_delete"),
		map[string]any{"layout_file": f.LayoutFile, "name": "acme", "archive_dir": archives, "reason": "disk full test"},
		[]string{"FLEETSAFE_SYSTEMD_DIR=" + f.SystemdDir}, "ulimit -f 512", nil)
	assert.Equal(t, true, res["failed"], out)
	assert.Contains(t, res["msg"], "write archive")
	assert.Contains(t, res["msg"], "file too large")
	leftovers, _ := filepath.Glob(filepath.Join(archives, "acme", "*"))
	hidden, _ := filepath.Glob(filepath.Join(archives, "acme", ".*"))
	for _, p := range append(leftovers, hidden...) {
		assert.Equal(t, ".lock", filepath.Base(p), "the partial archive is removed: %s", p)
	}
	assert.Equal(t, before, f.Snapshot(t, "acme"), "the instance is untouched")
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	f, err := os.Open("/dev/urandom")
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Read(b)
	require.NoError(t, err)
	return b
}

// chmodPath opens every directory from dir up to / for traversal by others.
func chmodPath(t *testing.T, dir string) {
	for d := dir; d != "/"; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(d, fi.Mode().Perm()|0o055))
	}
}

// TestHostile_UnreadableFile runs the module as an unprivileged user on an
// instance holding a file that user cannot read: root reads everything, so
// only another user can show the refusal.
func TestHostile_UnreadableFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the module as another user")
	}
	lib := fleettest.BuildModules(t, "instance_soft_delete")
	f := fleettest.New(t, false, "acme")
	nobody := 65534
	chmodPath(t, f.Root)
	chmodPath(t, lib)
	require.NoError(t, filepath.Walk(f.Root, func(p string, _ os.FileInfo, err error) error {
		require.NoError(t, err)
		return os.Lchown(p, nobody, nobody)
	}))
	secret := filepath.Join(f.Path("data", "acme"), "root-only.key")
	require.NoError(t, os.WriteFile(secret, []byte("k"), 0o600))
	before := f.Snapshot(t, "acme")
	archives := filepath.Join(f.Root, "archives")
	require.NoError(t, os.MkdirAll(archives, 0o755))
	require.NoError(t, os.Chown(archives, nobody, nobody))

	res, out := runModule(t, filepath.Join(lib, "instance_soft_delete"),
		map[string]any{"layout_file": f.LayoutFile, "name": "acme", "archive_dir": archives, "reason": "unreadable test"},
		[]string{"FLEETSAFE_SYSTEMD_DIR=" + f.SystemdDir, "HOME=/tmp"}, "", &syscall.Credential{Uid: uint32(nobody), Gid: uint32(nobody)})
	assert.Equal(t, true, res["failed"], out)
	assert.Contains(t, res["msg"], secret)
	assert.Contains(t, res["msg"], "permission denied")
	assert.Equal(t, before, f.Snapshot(t, "acme"))
	arch, _ := filepath.Glob(filepath.Join(archives, "acme", "*.tar.zst*"))
	assert.Empty(t, arch)
}

// TestScale_200000SmallFiles archives an instance of 200,000 small files
// through the module binary and reports its peak memory.
func TestScale_200000SmallFiles(t *testing.T) {
	// The slowest test of the package by far: beside the crash tests
	// (also parallel), not after them.
	t.Parallel()
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		t.Skip("GNU time is needed to read the peak memory")
	}
	lib := fleettest.BuildModules(t, "instance_soft_delete")
	// The fleet and its archives on a tmpfs of their own: the test is
	// about 200,000 entries through the module and its memory, not about
	// the disk, whose journal made each of the four passes over them
	// (create, delete, restore, delete) minutes long on a loaded machine.
	// Without the right to mount, on the test directory's filesystem.
	root := t.TempDir()
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=2g,mode=0755"); err != nil {
		t.Logf("no tmpfs for the fleet (%v): on %s's filesystem", err, root)
	} else {
		t.Cleanup(func() {
			if err := syscall.Unmount(root, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount the fleet's tmpfs %s: %v", root, err)
			}
		})
	}
	f := fleettest.NewSpec(t, fleettest.Spec{Root: filepath.Join(root, "fleet"), Names: []string{"acme"}})
	data := f.Path("data", "acme")
	for d := range 200 {
		dir := filepath.Join(data, "many", strconv.Itoa(d))
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for i := range 1000 {
			require.NoError(t, os.WriteFile(filepath.Join(dir, strconv.Itoa(i)+".txt"), []byte("line "+strconv.Itoa(d*1000+i)+"\n"), 0o644))
		}
	}
	archives := filepath.Join(root, "archives")
	rss := filepath.Join(t.TempDir(), "rss")
	res, out := runModule(t, filepath.Join(lib, "instance_soft_delete"),
		map[string]any{"layout_file": f.LayoutFile, "name": "acme", "archive_dir": archives, "reason": "scale test"},
		[]string{"FLEETSAFE_SYSTEMD_DIR=" + f.SystemdDir}, "", nil)
	require.Equal(t, false, res["failed"], out)
	files := res["archive"].(map[string]any)["files"].(float64)
	assert.Greater(t, files, 200000.0)

	// Once more under GNU time, restoring first, for the peak memory.
	_, err := softdelete.Restore(t.Context(), f.Layout, softdelete.RestoreRequest{Name: "acme", ArchiveDir: archives, Options: f.Options()})
	require.NoError(t, err)
	cmdArgs := filepath.Join(t.TempDir(), "args.json")
	data2, _ := json.Marshal(map[string]any{"layout_file": f.LayoutFile, "name": "acme", "archive_dir": archives, "reason": "scale test"})
	require.NoError(t, os.WriteFile(cmdArgs, data2, 0o644))
	cmd := exec.Command("/usr/bin/time", "-f", "%M", "-o", rss, filepath.Join(lib, "instance_soft_delete"), cmdArgs)
	cmd.Env = append(os.Environ(), "FLEETSAFE_SYSTEMD_DIR="+f.SystemdDir)
	outb, err := cmd.Output()
	require.NoError(t, err, string(outb))
	peak, err := os.ReadFile(rss)
	require.NoError(t, err)
	t.Logf("soft delete of %d entries: peak RSS %s KiB", int(files), strings.TrimSpace(string(peak)))
}
