package archive

import (
	"archive/tar"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// UnsafeEntryError is an archive entry that would land outside its
// component or is of a kind fleetsafe never restores.
type UnsafeEntryError struct {
	Entry  string
	Reason string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("archive entry %q refused: %s", e.Entry, e.Reason)
}

// Hint tells the operator what to do.
func (e *UnsafeEntryError) Hint() string {
	return "the archive is not one fleetsafe wrote or it was tampered with; restore by hand after inspecting it"
}

// CheckEntry refuses names and kinds that could escape a component.
func CheckEntry(hdr *tar.Header) error {
	name := hdr.Name
	if err := CheckName(name); err != "" {
		return &UnsafeEntryError{name, err}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
	case tar.TypeLink:
		if err := CheckName(hdr.Linkname); err != "" {
			return &UnsafeEntryError{name, "hard link target: " + err}
		}
	default:
		return &UnsafeEntryError{name, fmt.Sprintf("entry type %q (devices, FIFOs and others) is never restored", hdr.Typeflag)}
	}
	return nil
}

// CheckName returns why an archive name is unsafe, or "".
func CheckName(name string) string {
	switch {
	case strings.HasPrefix(name, "/"):
		return "absolute name"
	case slices.Contains(strings.Split(name, "/"), ".."):
		return "name contains .."
	case !filepath.IsLocal(strings.TrimSuffix(name, "/")):
		return "name leaves the archive root"
	case strings.TrimSuffix(name, "/") != path.Clean(strings.TrimSuffix(name, "/")):
		return "name is not clean (empty, . or repeated / elements)"
	}
	return ""
}
