package mariadb

// TrackScratch records the scratch databases created until the returned
// function is called.
func TrackScratch() (names func() []string, stop func()) {
	var list []string
	testHookScratch = func(n string) { list = append(list, n) }
	return func() []string { return list }, func() { testHookScratch = nil }
}

// CrashAt stops Quarantine and Restore at the step fn says yes to, as a
// crash would; the returned function removes it.
func CrashAt(fn func(step string) bool) func() {
	testCrashAt = fn
	return func() { testCrashAt = nil }
}
