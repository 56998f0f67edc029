package modutil

import "os"

// The test hooks are settings that tests and the sandbox demo give a
// module through its environment: FLEETSAFE_TEST_CRASH_AFTER (CrashHook)
// and FLEETSAFE_SYSTEMD_DIR / FLEETSAFE_SYSTEMCTL (Options: another unit
// tree and systemctl, because no systemd runs there).
//
// A release binary reads none of them: readTestHooks stays nil unless the
// binary is built with the build tag fleetsafe_testhooks (`make build`,
// the tests' own builds; testhooks_on.go) or a test process calls
// EnableTestHooks (internal/fleettest does). Nothing else references
// readTestHooksEnv, so the linker drops it, and the variables' names are
// not even in a release binary.
type hookSettings struct {
	crashAfter, systemdDir, systemctl string
}

// TestHooksTag is the build tag that builds the test hooks in.
const TestHooksTag = "fleetsafe_testhooks"

var readTestHooks func() hookSettings

func testHooks() hookSettings {
	if readTestHooks == nil {
		return hookSettings{}
	}
	return readTestHooks()
}

// EnableTestHooks makes this process honour the test hooks' variables, as
// a build with the tag fleetsafe_testhooks does. For test binaries that run
// module code in-process; call it from an init function (it is not safe to
// call while modules run). A release binary never calls it.
func EnableTestHooks() { readTestHooks = readTestHooksEnv }

func readTestHooksEnv() hookSettings {
	return hookSettings{
		crashAfter: os.Getenv(CrashAfterEnv),
		systemdDir: os.Getenv("FLEETSAFE_SYSTEMD_DIR"),
		systemctl:  os.Getenv("FLEETSAFE_SYSTEMCTL"),
	}
}
