package sqlitedb

// CrashAt stops Move after the step fn says yes to ("moved-wal",
// "moved", …), as a crash would; the returned function removes it.
func CrashAt(fn func(step string) bool) func() {
	testCrashAt = fn
	return func() { testCrashAt = nil }
}
