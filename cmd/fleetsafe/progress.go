package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"unsafe"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/units"
)

// progressBar shows the library's progress reports as one line rewritten
// in place, on a terminal: the phase, a bar, the percentage of bytes, the
// bytes and the files. A phase's last report ends its line.
type progressBar struct {
	w    io.Writer
	open bool // a line is shown and not ended
}

const barWidth = 30

func (b *progressBar) update(p archive.Progress) {
	fmt.Fprintf(b.w, "\r%s\x1b[K", renderProgress(p))
	b.open = p.BytesDone < p.BytesTotal || p.FilesDone < p.FilesTotal
	if !b.open {
		fmt.Fprintln(b.w)
	}
}

// finish ends a line left open by a phase that stopped short (a failure).
func (b *progressBar) finish() {
	if b.open {
		fmt.Fprintln(b.w)
		b.open = false
	}
}

func renderProgress(p archive.Progress) string {
	frac := 1.0
	if p.BytesTotal > 0 {
		frac = float64(p.BytesDone) / float64(p.BytesTotal)
	}
	full := int(frac * barWidth)
	s := fmt.Sprintf("%-8s [%s%s] %3d%%  %s / %s", p.Phase, strings.Repeat("#", full), strings.Repeat("-", barWidth-full),
		int(frac*100), units.Bytes(p.BytesDone), units.Bytes(p.BytesTotal))
	if p.FilesTotal > 0 {
		s += fmt.Sprintf("  %d/%d files", p.FilesDone, p.FilesTotal)
	}
	return s
}

// isTerminal tells whether w is a terminal (the TCGETS ioctl succeeds).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}
