package backup

// SetAfterRestoreHook runs fn after each scratch restore, before the
// comparison with the live database; the returned function removes it.
func SetAfterRestoreHook(fn func(name string)) func() {
	testHookAfterRestore = fn
	return func() { testHookAfterRestore = nil }
}

// TrackScratch records the scratch databases created until the returned
// function is called.
func TrackScratch() (names func() []string, stop func()) {
	var list []string
	testHookScratch = func(n string) { list = append(list, n) }
	return func() []string { return list }, func() { testHookScratch = nil }
}
