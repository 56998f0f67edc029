package instancesoftdelete

import (
	"os"
	"syscall"
)

// testStepHook, set by in-process tests, runs after each step.
var testStepHook func(string)

// stepHook is the step hook of a run: the in-process test hook, or the
// crash hook of FLEETSAFE_TEST_CRASH_AFTER.
func stepHook() func(string) {
	if testStepHook != nil {
		return testStepHook
	}
	return crashHook()
}

// crashHook returns a step hook that kills this process with SIGKILL after
// the step named by FLEETSAFE_TEST_CRASH_AFTER; crash-safety tests use it.
// Without the variable it returns nil.
func crashHook() func(string) {
	at := os.Getenv("FLEETSAFE_TEST_CRASH_AFTER")
	if at == "" {
		return nil
	}
	return func(step string) {
		if step == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}
