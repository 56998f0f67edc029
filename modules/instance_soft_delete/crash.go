package instancesoftdelete

import "github.com/fleetsafe/fleetsafe/internal/modutil"

// testStepHook, set by in-process tests, runs after each step.
var testStepHook func(string)

// stepHook is the step hook of a run: the in-process test hook, or the
// crash hook of FLEETSAFE_TEST_CRASH_AFTER (modutil.CrashHook).
func stepHook() func(string) {
	if testStepHook != nil {
		return testStepHook
	}
	return modutil.CrashHook()
}
