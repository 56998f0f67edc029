// Package streamguard puts a checking filter between a dump and the client
// that runs it (psql, the mariadb client): the filter passes the dump on
// as it reads it, and stops it before anything it refuses.
package streamguard

import (
	"errors"
	"io"
	"sync"
)

// Start runs scan in a goroutine of its own; what scan writes to dst is
// what the returned reader gives its consumer (a client's standard
// input), as the consumer reads it.
//
// finish is called once the consumer is done with the reader, whether it
// read everything or stopped early (a client that exits at its first
// error leaves the rest unread): it closes the reader, so that a scan
// blocked on its next write stops there instead of waiting for ever,
// waits for the scan to end and returns the scan's error (a refusal, or
// the source unreadable), or nil when the scan ended cleanly or was cut
// only by the consumer stopping. finish may be called again: it returns
// the same answer.
func Start(scan func(dst io.Writer) error) (r io.Reader, finish func() error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := scan(pw)
		pw.CloseWithError(err)
		done <- err
	}()
	var once sync.Once
	var res error
	return pr, func() error {
		once.Do(func() {
			pr.Close()
			if err := <-done; err != nil && !errors.Is(err, io.ErrClosedPipe) {
				res = err
			}
		})
		return res
	}
}
