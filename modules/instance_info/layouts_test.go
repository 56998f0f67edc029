package instanceinfo

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// runBinary runs the built module on args as ansible-core would.
func runBinary(t *testing.T, bin string, args map[string]any, env ...string) map[string]any {
	t.Helper()
	cmd := fleettest.ModuleCmd(t, bin, args)
	cmd.Env = append(os.Environ(), env...)
	return fleettest.ModuleResult(t, cmd)
}

func TestInstanceInfo_BinaryRefusesOverlappingLayouts(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_info")
	bin := filepath.Join(lib, "instance_info")
	f := fleettest.New(t, false, "acme")
	env := "FLEETSAFE_SYSTEMD_DIR=" + f.SystemdDir

	t.Run("components of one layout overlap (case 1)", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "overlap.yml")
		require.NoError(t, os.WriteFile(bad, []byte("app: x\ncomponents:\n  - name: data\n    type: dir\n    path: "+f.Root+"/x/{name}\n"+
			"  - name: files\n    type: dir\n    path: "+f.Root+"/x/{name}-data\n"), 0o644))
		res := runBinary(t, bin, map[string]any{"layout_file": bad}, env)
		assert.Equal(t, true, res["failed"])
		assert.Equal(t, false, res["changed"])
		msg := res["msg"].(string)
		assert.Contains(t, msg, bad+" line 5, key components[0].path")
		assert.Contains(t, msg, bad+" line 8, key components[1].path")
		assert.Contains(t, msg, "both denote "+f.Root+"/x/")
		assert.NotContains(t, res, "instances")
	})

	t.Run("a bare {name} database (case 2)", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bare.yml")
		require.NoError(t, os.WriteFile(bad, []byte("app: x\ncomponents:\n  - name: db\n    type: postgresql\n    database: '{name}'\n"), 0o644))
		res := runBinary(t, bin, map[string]any{"layout_file": bad}, env)
		assert.Equal(t, true, res["failed"])
		assert.Contains(t, res["msg"], bad+" line 5, key components[0].database")
		assert.Contains(t, res["msg"], "literal prefix")
	})

	t.Run("the layout overlaps another file of layouts_dir (case 13)", func(t *testing.T) {
		dir := t.TempDir()
		other := filepath.Join(dir, "other.yml")
		require.NoError(t, os.WriteFile(other, []byte("app: other\ncomponents:\n  - name: site\n    type: dir\n    path: "+f.Root+"/srv/{name}\n"), 0o644))
		res := runBinary(t, bin, map[string]any{"layout_file": f.LayoutFile, "layouts_dir": dir}, env)
		assert.Equal(t, true, res["failed"])
		msg := res["msg"].(string)
		assert.Contains(t, msg, f.LayoutFile+" line ")
		assert.Contains(t, msg, other+" line 5, key components[0].path")
		assert.Contains(t, msg, `instance "`+f.App+`" component site of other (`+f.Root+"/srv/"+f.App+") contains")
		assert.NotContains(t, res, "instances")
	})

	t.Run("a file of layouts_dir that does not parse is named", func(t *testing.T) {
		dir := t.TempDir()
		broken := filepath.Join(dir, "broken.yaml")
		require.NoError(t, os.WriteFile(broken, []byte("app: broken\ncomponents:\n  - name: d\n    type: dir\n    path: /var/{name}\n"), 0o644))
		res := runBinary(t, bin, map[string]any{"layout_file": f.LayoutFile, "layouts_dir": dir}, env)
		assert.Equal(t, true, res["failed"])
		assert.Contains(t, res["msg"], broken+" line 5, key components[0].path")
	})

	t.Run("a missing layouts_dir given explicitly is an error", func(t *testing.T) {
		res := runBinary(t, bin, map[string]any{"layout_file": f.LayoutFile, "layouts_dir": filepath.Join(f.Root, "nope")}, env)
		assert.Equal(t, true, res["failed"])
		assert.Contains(t, res["msg"], "nope")
	})

	t.Run("disjoint layouts and the layout's own file: fine", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "other.yml"), []byte("app: other\ncomponents:\n  - name: site\n    type: dir\n    path: "+f.Root+"/other/{name}\n"), 0o644))
		own, err := os.ReadFile(f.LayoutFile)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "own.yml"), own, 0o644))
		res := runBinary(t, bin, map[string]any{"layout_file": f.LayoutFile, "layouts_dir": dir}, env)
		require.Equal(t, false, res["failed"], res["msg"])
		assert.EqualValues(t, 1, res["count"])
	})
}

// The run-time double check through the module: another application's
// directory is a symbolic link into this fleet's instance acme, so its
// instance "data" is acme's data. No template analysis can see it;
// discovery refuses, naming both.
func TestInstanceInfo_BinaryRefusesSharedLocationAtRunTime(t *testing.T) {
	lib := fleettest.BuildModules(t, "instance_info")
	f := fleettest.New(t, false, "acme", "globex")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "other.yml"), []byte("app: other\ncomponents:\n  - name: files\n    type: dir\n    path: "+f.Root+"/other/{name}\n"), 0o644))
	require.NoError(t, os.Symlink(filepath.Join(f.Root, "srv", f.App, "acme"), filepath.Join(f.Root, "other")))
	for _, args := range []map[string]any{
		{"layout_file": f.LayoutFile, "layouts_dir": dir},
		{"layout_file": f.LayoutFile, "layouts_dir": dir, "name": "acme"},
	} {
		res := runBinary(t, filepath.Join(lib, "instance_info"), args, "FLEETSAFE_SYSTEMD_DIR="+f.SystemdDir)
		assert.Equal(t, true, res["failed"], res["msg"])
		msg, _ := res["msg"].(string)
		assert.Contains(t, msg, `instance "acme" component data of app `+f.App+` (`+f.Path("data", "acme")+`)`)
		assert.Contains(t, msg, `instance "data" component files of app other (`+f.Root+`/other/data, really `+f.Path("data", "acme")+`)`)
	}
	// globex is no other instance's: looking it up alone is fine.
	res := runBinary(t, filepath.Join(lib, "instance_info"), map[string]any{"layout_file": f.LayoutFile, "layouts_dir": dir, "name": "globex"}, "FLEETSAFE_SYSTEMD_DIR="+f.SystemdDir)
	assert.Equal(t, false, res["failed"], res["msg"])
	assert.Equal(t, true, res["found"])
}
