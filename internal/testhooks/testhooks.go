// Package testhooks holds the settings that tests and the sandbox demo
// give a module through its environment: FLEETSAFE_TEST_CRASH_AFTER (the
// step after which a module kills itself, modutil.CrashHook) and
// FLEETSAFE_SYSTEMD_DIR / FLEETSAFE_SYSTEMCTL (another unit tree and
// systemctl, because no systemd runs there; modutil.Options).
//
// A release binary reads none of them: Get returns the zero Settings
// unless the binary is built with the build tag fleetsafe_testhooks
// (`make build`, the tests' own builds; testhooks_on.go) or a test process
// calls Enable (internal/fleettest does). Nothing else references
// readEnv, so the linker drops it, and the variables' names are not even
// in a release binary (cmd/fleetsafe's TestRelease_NoTestHooks).
//
// It imports nothing of the project's, so that the test harness may
// import it from anywhere.
package testhooks

import "os"

// Tag is the build tag that builds the test hooks in.
const Tag = "fleetsafe_testhooks"

// CrashAfterEnv names the environment variable that crash-safety tests set
// to the step after which a module kills itself.
const CrashAfterEnv = "FLEETSAFE_TEST_CRASH_AFTER"

// Settings are the test hooks' values; empty when unset or not enabled.
type Settings struct {
	CrashAfter, SystemdDir, Systemctl string
}

var read func() Settings

// Get returns the test hooks' settings: the environment's when enabled,
// else none.
func Get() Settings {
	if read == nil {
		return Settings{}
	}
	return read()
}

// Enable makes this process honour the test hooks' variables, as a build
// with the tag fleetsafe_testhooks does. For test binaries that run module
// code in-process; call it from an init function (it is not safe to call
// while modules run). A release binary never calls it.
func Enable() { read = readEnv }

func readEnv() Settings {
	return Settings{
		CrashAfter: os.Getenv(CrashAfterEnv),
		SystemdDir: os.Getenv("FLEETSAFE_SYSTEMD_DIR"),
		Systemctl:  os.Getenv("FLEETSAFE_SYSTEMCTL"),
	}
}
