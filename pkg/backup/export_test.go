package backup

// SetAfterRestoreHook runs fn after each scratch restore, before the
// comparison with the live database; the returned function removes it.
func SetAfterRestoreHook(fn func(name string)) func() {
	testHookAfterRestore = fn
	return func() { testHookAfterRestore = nil }
}
