package pgdump

import "io"

// Hooks for the external tests.
var (
	VerifySequential = verifySequential
	VerifyParallel   = func(src io.Reader, workers int) (*Summary, error) { return verifyParallel(src, workers, 0) }
)

// SetSegSize sets the parallel checker's buffer size for a test and returns
// a function that restores it.
func SetSegSize(n int) func() {
	old := segSize
	segSize = n
	return func() { segSize = old }
}

// SetFramingInflate sets how much of each stream VerifyFraming inflates
// for a test and returns a function that restores it.
func SetFramingInflate(n int64) func() {
	old := framingInflate
	framingInflate = n
	return func() { framingInflate = old }
}

// SetPlainReadSize sets PlainRows' read buffer for a test and returns a
// function that restores it.
func SetPlainReadSize(n int) func() {
	old := plainReadSize
	plainReadSize = n
	return func() { plainReadSize = old }
}

// SetAtStarted sets a function called as an inflater starts a stream read
// by position, and returns a function that unsets it.
func SetAtStarted(f func()) func() {
	atStarted = f
	return func() { atStarted = nil }
}
