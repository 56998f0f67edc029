package pgdump

// Hooks for the external tests.
var (
	VerifySequential = verifySequential
	VerifyParallel   = verifyParallel
)

// SetSegSize sets the parallel checker's buffer size for a test and returns
// a function that restores it.
func SetSegSize(n int) func() {
	old := segSize
	segSize = n
	return func() { segSize = old }
}
