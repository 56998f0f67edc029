package s3_test

import (
	"flag"
	"os"
	"testing"
)

// Each rapid check of the contract costs a round of requests to the
// server: 8 checks per state machine keep the package near ten seconds
// (-rapid.checks on the command line still wins).
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set {
		flag.Set("rapid.checks", "8")
	}
	os.Exit(m.Run())
}
