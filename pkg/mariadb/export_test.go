package mariadb

// TrackScratch records the scratch databases created until the returned
// function is called.
func TrackScratch() (names func() []string, stop func()) {
	var list []string
	testHookScratch = func(n string) { list = append(list, n) }
	return func() []string { return list }, func() { testHookScratch = nil }
}
