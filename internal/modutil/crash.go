package modutil

import (
	"os"
	"syscall"

	"github.com/fleetsafe/fleetsafe/internal/testhooks"
)

// CrashAfterEnv names the environment variable that crash-safety tests set
// to the step after which a module kills itself. Only a binary with the
// test hooks (internal/testhooks) reads it.
const CrashAfterEnv = testhooks.CrashAfterEnv

// CrashHook returns a step hook that kills this process with SIGKILL after
// the step named by FLEETSAFE_TEST_CRASH_AFTER; crash-safety tests use it.
// Without the variable, or in a release build (no test hooks), it returns
// nil. Every module takes it from here.
func CrashHook() func(string) {
	at := testhooks.Get().CrashAfter
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
