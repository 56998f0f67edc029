// Package model holds the model-based tests of fleetsafe: rapid state
// machines that drive the library (and the real module binaries) over a
// random fleet on the real PostgreSQL server and check, after every step,
// that each instance is exactly where the model says it is.
//
// The package has no code of its own outside its tests; `make test` runs
// them for 20 seconds (FLEETSAFE_MODEL_BUDGET=20s, with -race, random
// seeds; a plain `go test` for one minute), `make soak
// SOAKTIME=10m` for longer (main_test.go, runChecks). Databases are reused
// between sequences (dbpool_test.go); FLEETSAFE_MODEL_TIMING=1 prints the
// time each kind of step took.
package model
