// Package model holds the model-based tests of fleetsafe: rapid state
// machines that drive the library (and the real module binaries) over a
// random fleet on the real PostgreSQL server and check, after every step,
// that each instance is exactly where the model says it is.
//
// The package has no code of its own outside its tests; `make test` runs
// the machines briefly (with -race), `make soak SOAKTIME=10m` runs them
// for longer.
package model
