package paths

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
)

// Placeholder: an empty directory, carrying no extended attribute (no
// ACL), on its parent's filesystem (not a mount point).
func (Dir) Placeholder(locator string) string { return placeholder(locator, true) }

// Placeholder: an empty file with no other name, carrying no extended
// attribute, on its parent's filesystem.
func (File) Placeholder(locator string) string { return placeholder(locator, false) }

// placeholder says why a present dir or file component is a placeholder
// that a restore replaces without force, or "" when it is not one.
// Whatever its mode, owner and mtime: a package script or
// systemd-tmpfiles recreates the place with default metadata, and the
// deleted component's own comes back with its content. Anything else
// present is left as it is (force replaces it).
func placeholder(locator string, dir bool) string {
	fi, err := os.Lstat(locator)
	if err != nil {
		return ""
	}
	parent, err := os.Stat(filepath.Dir(locator))
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	pst, pok := parent.Sys().(*syscall.Stat_t)
	if !ok || !pok || pst.Dev != st.Dev {
		return ""
	}
	what := ""
	switch {
	case dir && fi.IsDir():
		d, err := os.Open(locator)
		if err != nil {
			return ""
		}
		names, err := d.Readdirnames(1)
		d.Close()
		if len(names) > 0 || !errors.Is(err, io.EOF) {
			return ""
		}
		what = "an empty directory"
	case !dir && fi.Mode().IsRegular() && fi.Size() == 0 && st.Nlink == 1:
		what = "an empty file"
	default:
		return ""
	}
	f, err := os.OpenFile(locator, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	names, err := Flistxattr(int(f.Fd()))
	f.Close()
	if err != nil || len(names) > 0 {
		return ""
	}
	return fmt.Sprintf("%s (mode %v, owner %d:%d)", what, fi.Mode().Perm(), st.Uid, st.Gid)
}

// Flistxattr lists the extended attribute names of an open file (none
// where the filesystem has no extended attributes).
func Flistxattr(fd int) ([]string, error) {
	size := 256
	for {
		buf := make([]byte, size)
		n, _, e := syscall.Syscall(syscall.SYS_FLISTXATTR, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		switch {
		case e == syscall.ERANGE:
			size *= 4
			continue
		case e == syscall.ENOTSUP:
			return nil, nil
		case e != 0:
			return nil, e
		}
		var out []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name != "" {
				out = append(out, name)
			}
		}
		return out, nil
	}
}

// Staging is a hidden directory in the component's own parent (same
// filesystem, so the final rename is atomic), holding the component under
// its own base name.
func (base) Staging(t kind.Target) string { return StagingDir(t) }

// StagingDir is Staging for any kind restored through a staging
// directory beside its place.
func StagingDir(t kind.Target) string {
	return filepath.Join(filepath.Dir(t.Locator), StagingPrefix+kind.StagingID(t.App, t.Instance)+"-"+t.Component.Name)
}

func (b base) Stage(context.Context, kind.Env, kind.Target, string) (string, error) {
	return "", fmt.Errorf("a %s component is staged from its archive's tree entries, not from a dump", b.typ)
}

// PutInPlace renames the staged component into place.
func (base) PutInPlace(_ context.Context, _ kind.Env, t kind.Target, staged string) error {
	return RenameStaged(staged, t.Locator)
}

// RenameStaged puts a staged component (the entry of the staging
// directory top named like locator) in place with one rename that never
// replaces anything.
func RenameStaged(top, locator string) error {
	parent := filepath.Dir(locator)
	d, err := os.Open(parent)
	if err != nil {
		return err
	}
	defer d.Close()
	from := filepath.Base(top) + "/" + filepath.Base(locator)
	if err := renameNoReplaceIn(d, from, filepath.Base(locator)); err != nil {
		return fmt.Errorf("put %s in place: %w", locator, err)
	}
	return SyncDir(parent)
}

// DropStaging removes the staging directory (empty once renamed into
// place) through its parent's os.Root.
func (base) DropStaging(_ context.Context, _ kind.Env, staged string, _ bool) error {
	return RemoveStaging(staged)
}

// RemoveStaging removes a staging directory and what it holds, never
// through a link.
func RemoveStaging(staged string) error {
	root, err := os.OpenRoot(filepath.Dir(staged))
	if err != nil {
		return err
	}
	defer root.Close()
	return root.RemoveAll(filepath.Base(staged))
}

// CleanStaging removes the staging directory a killed restore left.
func (base) CleanStaging(_ context.Context, _ kind.Env, t kind.Target) (bool, error) {
	top := StagingDir(t)
	if _, err := os.Lstat(top); err != nil {
		return false, nil
	}
	root, err := os.OpenRoot(filepath.Dir(top))
	if err != nil {
		return false, err
	}
	err = root.RemoveAll(filepath.Base(top))
	root.Close()
	if err != nil {
		return false, fmt.Errorf("remove staging leftover %s: %w", top, err)
	}
	return true, nil
}

func (base) RunbookTools() string { return "" }

// RunbookStep writes the block that puts a dir or file component back.
func (b base) RunbookStep(w *strings.Builder, s kind.RunbookStep) {
	q, one := kind.ShellQuote, kind.OneLine
	dest := s.Locator
	parent := filepath.Dir(dest)
	stage := filepath.Join(parent, ".fleetsafe-restore-"+s.Tag+"-"+s.Component)
	member, strip, staged := s.ArchivePath, 1, path.Base(s.ArchivePath)
	noun := "directory"
	if b.typ == TypeFile {
		noun = "file"
		base := filepath.Base(dest)
		member, strip, staged = s.ArchivePath+"/"+base, 2, base
	}
	fmt.Fprintf(w, "### %s: %s `%s`\n\n", one(s.Component), noun, one(dest))
	fmt.Fprintf(w, "Staging directory, if the block fails: `%s`.\n\n", one(stage))
	w.WriteString("```sh\n")
	kind.WriteRefusal(w, dest, "move it aside first, then run this block again")
	fmt.Fprintf(w, "  mkdir -p %s &&\n", q(parent))
	fmt.Fprintf(w, "    mkdir -m 0700 %s &&\n", q(stage))
	fmt.Fprintf(w, "    %s -xpf %s --numeric-owner --xattrs --xattrs-include='*' -C %s --strip-components=%d %s &&\n",
		kind.RunbookTar, q(s.Archive), q(stage), strip, q(member))
	fmt.Fprintf(w, "    mv -T %s %s &&\n", q(stage+"/"+staged), q(dest))
	fmt.Fprintf(w, "    rmdir %s\n", q(stage))
	w.WriteString("fi\n```\n\n")
}
