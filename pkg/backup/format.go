package backup

import (
	"bufio"
	"io"
	"os"
)

// formatCheck reads one backup file of a registered format to its end and
// fills res (kind, data, database); the error is what is wrong with the
// content. f is the file itself (for formats read by random access), br
// the buffered reader at its start (to peek), src the same bytes through
// the checksum: a check that reads the content reads it from src.
type formatCheck func(f *os.File, br *bufio.Reader, src io.Reader, res *fileResult) error

// formatChecks are the formats that files beside this one add to
// checkFile, by name (mysql_dump, sqlite).
var formatChecks = map[string]formatCheck{}

// registerFormat adds a format to checkFile; it is called from init.
func registerFormat(name string, fn formatCheck) {
	if _, dup := formatChecks[name]; dup {
		panic("backup: format " + name + " registered twice")
	}
	formatChecks[name] = fn
}

// Formats lists the formats registered besides those checkFile knows by
// itself (for the layout's list of backup formats).
func Formats() []string {
	out := make([]string, 0, len(formatChecks))
	for n := range formatChecks {
		out = append(out, n)
	}
	return out
}
