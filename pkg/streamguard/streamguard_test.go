package streamguard_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/streamguard"
)

// lines is a scan that passes n lines and refuses the line "bad".
func lines(src io.Reader) func(io.Writer) error {
	return func(dst io.Writer) error {
		sc := bufio.NewScanner(src)
		for n := 1; sc.Scan(); n++ {
			if sc.Text() == "bad" {
				return fmt.Errorf("line %d refused", n)
			}
			if _, err := fmt.Fprintln(dst, sc.Text()); err != nil {
				return err
			}
		}
		return sc.Err()
	}
}

func within(t *testing.T, d time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("no answer after %v: a hang", d)
	}
}

// TestStart_PassesAll: a clean source passes whole; finish says nil.
func TestStart_PassesAll(t *testing.T) {
	r, finish := streamguard.Start(lines(strings.NewReader("a\nb\nc\n")))
	out, err := io.ReadAll(r)
	if err != nil || string(out) != "a\nb\nc\n" {
		t.Fatalf("got %q, %v", out, err)
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
}

// TestStart_Refusal: the stream stops before the refused line, the reader
// fails with the refusal, and finish returns it (twice alike).
func TestStart_Refusal(t *testing.T) {
	r, finish := streamguard.Start(lines(strings.NewReader("a\nbad\nc\n")))
	out, err := io.ReadAll(r)
	if string(out) != "a\n" || err == nil {
		t.Fatalf("got %q, %v", out, err)
	}
	for range 2 {
		if err := finish(); err == nil || !strings.Contains(err.Error(), "line 2 refused") {
			t.Fatalf("finish: %v", err)
		}
	}
}

// TestStart_ConsumerStopsEarly: a consumer that reads a little of a large
// stream and stops (a client exiting at its first error) does not leave
// the scan, nor finish, waiting for ever; that stop is no error.
func TestStart_ConsumerStopsEarly(t *testing.T) {
	r, finish := streamguard.Start(lines(strings.NewReader(strings.Repeat("line\n", 1<<20))))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	// A hang is for ever; a minute is only there so that a loaded
	// machine's slow drain of the rest is not taken for one.
	within(t, time.Minute, func() {
		if err := finish(); err != nil {
			t.Errorf("finish after an early stop: %v", err)
		}
	})
}

// TestStart_SourceUnreadable: a source that fails (a cut gzip stream) is
// reported by finish.
func TestStart_SourceUnreadable(t *testing.T) {
	cut := errors.New("unexpected EOF in the source")
	r, finish := streamguard.Start(lines(io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(cut))))
	_, _ = io.ReadAll(r)
	if err := finish(); !errors.Is(err, cut) {
		t.Fatalf("finish: %v", err)
	}
}
