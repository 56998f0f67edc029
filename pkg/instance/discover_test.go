package instance_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
)

func names(insts []*instance.Instance) []string {
	var out []string
	for _, i := range insts {
		out = append(out, i.Name)
	}
	return out
}

func TestDiscover_RealFleetWithDatabases(t *testing.T) {
	f := fleettest.New(t, true, "acme", "globex", "initech")
	ctx := context.Background()

	// A partial instance: only its database is left.
	require.NoError(t, os.RemoveAll(f.Path("config", "initech")))
	require.NoError(t, os.RemoveAll(filepath.Dir(f.Path("data", "initech"))))
	require.NoError(t, os.RemoveAll(f.Path("logs", "initech")))
	// A database-only instance nobody created directories for.
	require.NoError(t, f.CreateDatabase(ctx, "orphan-db"))

	got, err := f.Layout.Discover(ctx, f.Options())
	require.NoError(t, err)
	assert.Equal(t, []string{"acme", "globex", "initech", "orphan-db"}, names(got))

	acme := got[0]
	assert.Equal(t, instance.StatusComplete, acme.Status)
	for _, c := range acme.Components {
		assert.True(t, c.Present, c.Name)
	}
	db, _ := acme.State("database")
	assert.Equal(t, f.Database("acme"), db.Locator)
	require.NotNil(t, db.SizeBytes)
	assert.Greater(t, *db.SizeBytes, int64(1000))
	data, _ := acme.State("data")
	assert.Equal(t, f.Path("data", "acme"), data.Locator)
	require.NotNil(t, data.SizeBytes)
	assert.Greater(t, *data.SizeBytes, int64(500))
	require.NotNil(t, acme.LastActivity)
	svc, _ := acme.State("service")
	assert.Equal(t, f.App+"@acme.service", svc.Locator)
	assert.True(t, svc.Present)

	initech := got[2]
	assert.Equal(t, instance.StatusPartial, initech.Status)
	cfg, _ := initech.State("config")
	assert.False(t, cfg.Present)
	db, _ = initech.State("database")
	assert.True(t, db.Present)
}

func TestDiscover_UnreachableDatabaseIsAnError(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	l, err := instance.ParseLayout([]byte(fleettest.LayoutYAML(f.Root, f.App, true)), "l.yml")
	require.NoError(t, err)
	opts := f.Options()
	opts.PG.Host = "/nonexistent-socket-dir"
	_, err = l.Discover(context.Background(), opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "component database")
}

func TestDiscover_NotInstances(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	parent := filepath.Dir(f.Path("config", "acme"))
	// Hidden entries, the trash, names outside the pattern, and a file
	// where a directory is expected are not instances.
	for _, d := range []string{".fleetsafe-trash", ".hidden", "UPPER", "has space", "under_score"} {
		require.NoError(t, os.MkdirAll(filepath.Join(parent, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(parent, "plainfile"), []byte("x"), 0o644))

	got, err := f.Layout.Discover(context.Background(), f.Options())
	require.NoError(t, err)
	assert.Equal(t, []string{"acme"}, names(got))
}

func TestDiscover_SkipSizes(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	opts := f.Options()
	opts.SkipSizes = true
	got, err := f.Layout.Discover(context.Background(), opts)
	require.NoError(t, err)
	data, _ := got[0].State("data")
	assert.Nil(t, data.SizeBytes)
	assert.NotNil(t, data.Modified)
}

func TestDiscover_SymlinkLeadingOutIsReported(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	parent := filepath.Dir(f.Path("config", "acme"))
	require.NoError(t, os.Symlink("/", filepath.Join(parent, "evil")))
	require.NoError(t, os.Symlink("acme", filepath.Join(parent, "alias")))

	got, err := f.Layout.Discover(context.Background(), f.Options())
	require.NoError(t, err)
	require.Equal(t, []string{"acme", "alias", "evil"}, names(got))
	evil, _ := got[2].State("config")
	assert.True(t, evil.Present)
	assert.Equal(t, "/", evil.LinkTarget)
	assert.Contains(t, evil.Problem, "leading outside its parent directory")
	alias, _ := got[1].State("config")
	assert.Equal(t, "acme", alias.LinkTarget)
	assert.Contains(t, alias.Problem, "symbolic link")
}

func TestDiscover_SymlinkInsidePathLeadingOut(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	// data is /srv/<app>/{name}/data: make {name}/data a link to /etc.
	dataPath := f.Path("data", "acme")
	require.NoError(t, os.RemoveAll(dataPath))
	require.NoError(t, os.Symlink("/etc", dataPath))
	inst, err := f.Layout.Resolve(context.Background(), "acme", f.Options())
	require.NoError(t, err)
	data, _ := inst.State("data")
	assert.True(t, data.Present)
	assert.NotEmpty(t, data.Problem)
	assert.Nil(t, data.SizeBytes, "never walks through the link")
}

func TestResolve(t *testing.T) {
	f := fleettest.New(t, false, "acme", "acme-2")
	ctx := context.Background()

	inst, err := f.Layout.Resolve(ctx, "acme", f.Options())
	require.NoError(t, err)
	assert.Equal(t, "acme", inst.Name)
	assert.Equal(t, instance.StatusComplete, inst.Status)

	_, err = f.Layout.Resolve(ctx, "acm", f.Options())
	var nf *instance.NotFoundError
	require.True(t, errors.As(err, &nf), "%v", err)
	assert.Contains(t, nf.Hint(), "instance_info")

	for _, bad := range []string{"acme*", "acme/../acme-2", "", " acme", "ACME", "."} {
		_, err := f.Layout.Resolve(ctx, bad, f.Options())
		var ie *instance.InvalidNameError
		assert.True(t, errors.As(err, &ie), "%q: %v", bad, err)
	}
}

// A name refused by validation never reaches the filesystem: a directory
// literally called "*" stays unknown to Resolve.
func TestResolve_RefusesBeforeLooking(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	parent := filepath.Dir(f.Path("config", "acme"))
	require.NoError(t, os.MkdirAll(filepath.Join(parent, "*"), 0o755))
	_, err := f.Layout.Resolve(context.Background(), "*", f.Options())
	var ie *instance.InvalidNameError
	require.True(t, errors.As(err, &ie))
}

func TestFingerprint(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	a, err := f.Layout.Resolve(ctx, "acme", f.Options())
	require.NoError(t, err)

	// Content changes do not change the fingerprint.
	require.NoError(t, os.WriteFile(filepath.Join(f.Path("data", "acme"), "new.txt"), []byte("more"), 0o644))
	b, err := f.Layout.Resolve(ctx, "acme", f.Options())
	require.NoError(t, err)
	assert.Equal(t, a.Fingerprint(), b.Fingerprint())
	assert.Len(t, a.Fingerprint(), 64)

	// A component disappearing does.
	require.NoError(t, os.RemoveAll(f.Path("logs", "acme")))
	c, err := f.Layout.Resolve(ctx, "acme", f.Options())
	require.NoError(t, err)
	assert.NotEqual(t, a.Fingerprint(), c.Fingerprint())

	// Another host does.
	opts := f.Options()
	opts.HostID = "other-host"
	d, err := f.Layout.Resolve(ctx, "acme", opts)
	require.NoError(t, err)
	assert.NotEqual(t, c.Fingerprint(), d.Fingerprint())
}

func TestSystemdUnits_FromUnitTree(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	// A unit file at the top and a masked unit (link to /dev/null).
	require.NoError(t, os.WriteFile(filepath.Join(f.SystemdDir, f.App+"@fromfile.service"), []byte("[Unit]\n"), 0o644))
	require.NoError(t, os.Symlink("/dev/null", filepath.Join(f.SystemdDir, f.App+"@masked.service")))
	got, err := f.Layout.Discover(context.Background(), f.Options())
	require.NoError(t, err)
	assert.Equal(t, []string{"acme", "fromfile", "masked"}, names(got))
	assert.Equal(t, instance.StatusPartial, got[1].Status)
}

// No running systemd exists on the test machines, so this fake systemctl
// stands in for one: it reports acme's unit as loaded and active.
func TestSystemdUnits_FromSystemctl(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	fake := filepath.Join(t.TempDir(), "systemctl")
	script := "#!/bin/sh\ncase \"$1\" in\n" +
		"list-units) echo '" + f.App + "@acme.service loaded active running acme'; echo '" + f.App + "@ghost.service loaded failed failed ghost';;\n" +
		"show) case \"$4\" in *acme*) printf 'LoadState=loaded\\nActiveState=active\\n';; *ghost*) printf 'LoadState=loaded\\nActiveState=failed\\n';; *) printf 'LoadState=not-found\\nActiveState=inactive\\n';; esac;;\n" +
		"esac\n"
	require.NoError(t, os.WriteFile(fake, []byte(script), 0o755))
	opts := f.Options()
	opts.Systemctl = fake
	got, err := f.Layout.Discover(context.Background(), opts)
	require.NoError(t, err)
	require.Equal(t, []string{"acme", "ghost"}, names(got))
	svc, _ := got[0].State("service")
	require.NotNil(t, svc.Active)
	assert.True(t, *svc.Active)
	ghost, _ := got[1].State("service")
	require.NotNil(t, ghost.Active)
	assert.False(t, *ghost.Active)
}

func TestJoin_Confined(t *testing.T) {
	p, err := instance.Join("/srv/x", "acme", "data")
	require.NoError(t, err)
	assert.Equal(t, "/srv/x/acme/data", p)
	for _, bad := range []string{"..", "../etc", "/etc", "a/../../b"} {
		_, err := instance.Join("/srv/x", bad)
		assert.Error(t, err, bad)
	}
}
