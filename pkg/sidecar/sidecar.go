// Package sidecar reads and formats sha256sum sidecar files
// (`<file>.sha256`), as written by `sha256sum file > file.sha256` and
// checked by `sha256sum -c`.
package sidecar

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Suffix is appended to a file's name to name its sidecar.
const Suffix = ".sha256"

// Format returns the sidecar line for file's digest.
func Format(file, digest string) string {
	return fmt.Sprintf("%s  %s\n", digest, filepath.Base(file))
}

// Read returns the lowercase hex digest in file's sidecar. The sidecar must
// be one line: 64 hex digits, two spaces (or " *"), the file's base name.
func Read(file string) (string, error) {
	data, err := os.ReadFile(file + Suffix)
	if err != nil {
		return "", fmt.Errorf("no readable sidecar %s%s: %w", file, Suffix, err)
	}
	return Parse(data, file)
}

// Parse returns the lowercase hex digest of a sidecar's content, data,
// read from file's sidecar wherever it lives (file may be a URL: only its
// last element is compared).
func Parse(data []byte, file string) (string, error) {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) != 1 {
		return "", fmt.Errorf("sidecar %s%s has %d lines, expected 1", file, Suffix, len(lines))
	}
	digest, name, ok := strings.Cut(lines[0], " ")
	name = strings.TrimLeft(name, " *")
	if !ok || len(digest) != 64 || strings.Trim(strings.ToLower(digest), "0123456789abcdef") != "" {
		return "", fmt.Errorf("sidecar %s%s line 1: %q is not '<64 hex digits>  <file name>'", file, Suffix, lines[0])
	}
	if name != filepath.Base(file) {
		return "", fmt.Errorf("sidecar %s%s line 1 names %q, not %q", file, Suffix, name, filepath.Base(file))
	}
	return strings.ToLower(digest), nil
}
