package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/paths"
)

// Kinds of findings. The ones an operator may accept (AcceptLosses) are
// the loss categories; mount points and immutable or append-only files are
// always refused.
const (
	// LossACL is a POSIX ACL (system.posix_acl_access or _default).
	LossACL = "acl"
	// LossXattr is an extended attribute other than ACLs, capabilities
	// and SELinux labels (user.*, trusted.*, security.*).
	LossXattr = "xattr"
	// LossCapability is a file capability (security.capability).
	LossCapability = "capability"
	// LossSELinux is an SELinux label (security.selinux).
	LossSELinux = "selinux"
	// LossFlags is an inode flag other than immutable and append-only
	// (nodump, noatime, sync, nocow, …), as chattr sets them.
	LossFlags = "flags"
	// LossSpecialFiles is a socket, named pipe or device: not archived;
	// accepted, it is skipped and recorded in the manifest.
	LossSpecialFiles = "special_files"
	// LossHardLinks is a file that shares its inode with a name outside
	// the instance: the archive holds a copy, and a restore from it
	// brings the file back alone (link count 1), no longer shared.
	LossHardLinks = "hard_links"

	// LossMount is a mount point inside a component; never accepted.
	LossMount = "mount"
	// LossImmutable is an immutable or append-only file; never accepted
	// (quarantine and purge could not complete).
	LossImmutable = "immutable"
)

// AcceptableLosses lists the values AcceptLosses may hold.
var AcceptableLosses = []string{LossACL, LossXattr, LossCapability, LossSELinux, LossFlags, LossSpecialFiles, LossHardLinks}

// Finding is one entry that an archive cannot carry whole, or that must
// not be crossed.
type Finding struct {
	Component string `json:"component"`
	Path      string `json:"path"`
	// Kind is one of the Loss* values.
	Kind string `json:"kind"`
	// What says it in words: "socket", "named pipe", "ACL
	// (system.posix_acl_access)", "immutable flag", …
	What string `json:"what"`
}

// FindingsError lists, all at once, what stops a deletion before anything
// is created or moved. Every finding is counted (Counts, Total); the list
// is bounded (Findings: the first ListedPerKind of each kind in each
// component, in path order), and the message names the first
// ListedInMessage of them and how many more there are: a refusal of
// 200,000 files each carrying an ACL stays a few kilobytes.
type FindingsError struct {
	Name string
	// Findings lists, in path order then kind, the first ListedPerKind
	// findings of each kind in each component.
	Findings []Finding
	// Counts counts every finding per component and kind (sorted by
	// component, then kind); Total is their sum. A FindingsError built
	// with Findings alone counts those.
	Counts []FindingCount
	Total  int
}

// ListedInMessage is how many findings a refusal's message names.
const ListedInMessage = 20

func (e *FindingsError) total() int { return max(e.Total, len(e.Findings)) }

func (e *FindingsError) counts() []FindingCount {
	if e.Counts != nil {
		return e.Counts
	}
	var cs []FindingCount
	for _, f := range e.Findings {
		i := slices.IndexFunc(cs, func(c FindingCount) bool { return c.Component == f.Component && c.Kind == f.Kind })
		if i < 0 {
			i = len(cs)
			cs = append(cs, FindingCount{Component: f.Component, Kind: f.Kind})
		}
		cs[i].Count++
	}
	return cs
}

func (e *FindingsError) Error() string {
	var b strings.Builder
	n := e.total()
	fmt.Fprintf(&b, "refusing to delete %s: %d entr%s cannot be archived whole or must not be crossed", e.Name, n, kind.Plural(n, "y", "ies"))
	listed := min(len(e.Findings), ListedInMessage)
	if listed < n {
		b.WriteString(" (")
		for i, c := range e.counts() {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%d %s in %s", c.Count, c.Kind, c.Component)
		}
		b.WriteString(")")
	}
	b.WriteString(": ")
	for i, f := range e.Findings[:listed] {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s is %s", f.Path, f.What)
	}
	if listed < n {
		fmt.Fprintf(&b, "; and %d more", n-listed)
	}
	return b.String()
}

// Hint tells the operator what to do.
func (e *FindingsError) Hint() string {
	var fixed, acceptable []string
	for _, c := range e.counts() {
		switch c.Kind {
		case LossMount:
			fixed = appendOnce(fixed, "unmount what is mounted inside the instance (or point the layout at it as its own component)")
		case LossImmutable:
			fixed = appendOnce(fixed, "clear immutable/append-only flags (chattr -i -a)")
		default:
			acceptable = appendOnce(acceptable, c.Kind)
		}
	}
	var parts []string
	parts = append(parts, fixed...)
	if len(acceptable) > 0 {
		parts = append(parts, fmt.Sprintf("remove them, or accept losing them with accept_losses: [%s] (recorded in the manifest)", strings.Join(acceptable, ", ")))
	}
	return strings.Join(parts, "; ") + "; nothing was changed"
}

func appendOnce(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// finding records one finding: accepted losses are kept for the manifest,
// the others refuse the deletion.
func (c *Collector) finding(component, path, kind, what string) {
	f := Finding{Component: component, Path: path, Kind: kind, What: what}
	if c.deferring {
		c.order = append(c.order, deferred{f: &f})
		return
	}
	c.record(f)
}

// record keeps one finding (once per path and kind, in linear time and
// bounded memory: findings_log.go).
func (c *Collector) record(f Finding) {
	l := &c.findings
	if c.accept[f.Kind] {
		l = &c.losses
	}
	if l.create == nil {
		l.create = c.spillFile
	}
	l.add(f)
}

// spillFile makes the unlinked file a log of findings spills into: the
// records' (the shelf's filesystem), or one in the temporary directory
// when the records are not kept (a plan).
func (c *Collector) spillFile() (*os.File, error) {
	if c.spool != nil && c.spool.create != nil {
		return c.spool.create()
	}
	f, err := os.CreateTemp("", "fleetsafe-findings-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

// Err returns the refusal for every finding not accepted, or nil; or the
// failure to keep the findings and losses (a full disk), before anything
// moves.
func (c *Collector) Err(name string) error {
	c.findOutsideLinks()
	if err := c.losses.finish(); err != nil {
		return err
	}
	if err := c.findings.finish(); err != nil {
		return err
	}
	if c.findings.total == 0 {
		return nil
	}
	return &FindingsError{Name: name, Findings: slices.Clone(c.findings.listed),
		Counts: slices.Clone(c.findings.counts), Total: c.findings.total}
}

// specialKind names a file type that tar archives cannot carry here.
func specialKind(m fs.FileMode) (string, string) {
	switch {
	case m&fs.ModeSocket != 0:
		return LossSpecialFiles, "a socket"
	case m&fs.ModeNamedPipe != 0:
		return LossSpecialFiles, "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return LossSpecialFiles, "a character device"
	case m&fs.ModeDevice != 0:
		return LossSpecialFiles, "a block device"
	}
	return LossSpecialFiles, "a special file of unknown type"
}

// Inode flags (linux/fs.h), read with FS_IOC_GETFLAGS.
const (
	fsIocGetflags = 0x80086601
	flImmutable   = 0x00000010
	flAppend      = 0x00000020
	// Flags an operator sets with chattr and would miss after a restore.
	flUserVisible = 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | // secrm, unrm, compr, sync
		0x00000040 | 0x00000080 | 0x00004000 | 0x00010000 | // nodump, noatime, journal data, dirsync
		0x00008000 | 0x00020000 | 0x00800000 | 0x20000000 // notail, topdir, nocow, projinherit
)

// inspector inspects entries' metadata on one goroutine: its own
// directory handle and read buffer, and the findings of the entry at hand.
type inspector struct {
	dh    dirHandle
	buf   []byte
	found []Finding
}

func (in *inspector) finding(component, path, kind, what string) {
	in.found = append(in.found, Finding{Component: component, Path: path, Kind: kind, What: what})
}

// inspectMeta names the metadata of a file or directory that the archive
// does not carry: extended attributes (ACLs, capabilities, SELinux labels,
// others) and inode flags.
//
// With sum, it also stores there the sha256 of the file read through the
// same descriptor.
func (in *inspector) inspectMeta(component string, root *os.Root, rel, full string, sum *string) error {
	f, err := in.dh.openFile(root, rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", full, err)
	}
	defer f.Close()
	names, err := paths.Flistxattr(int(f.Fd()))
	if err != nil {
		return fmt.Errorf("list extended attributes of %s: %w", full, err)
	}
	for _, n := range names {
		switch {
		case n == "system.posix_acl_access":
			in.finding(component, full, LossACL, "carrying an ACL (system.posix_acl_access) that the archive would drop")
		case n == "system.posix_acl_default":
			in.finding(component, full, LossACL, "carrying a default ACL (system.posix_acl_default) that the archive would drop")
		case n == "security.capability":
			in.finding(component, full, LossCapability, "carrying file capabilities (security.capability) that the archive would drop")
		case n == "security.selinux":
			in.finding(component, full, LossSELinux, "carrying an SELinux label (security.selinux) that the archive would drop")
		default:
			in.finding(component, full, LossXattr, fmt.Sprintf("carrying the extended attribute %s that the archive would drop", strconv.Quote(n)))
		}
	}
	var flags int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocGetflags, uintptr(unsafe.Pointer(&flags))); e != 0 {
		if errors.Is(e, syscall.ENOTTY) || errors.Is(e, syscall.EINVAL) || errors.Is(e, syscall.EOPNOTSUPP) || errors.Is(e, syscall.ENOSYS) {
			return in.hashInline(f, full, sum) // no inode flags on this filesystem
		}
		return fmt.Errorf("read inode flags of %s: %w", full, e)
	}
	if flags&flImmutable != 0 {
		in.finding(component, full, LossImmutable, "immutable (chattr +i): it could not be quarantined nor purged")
	}
	if flags&flAppend != 0 {
		in.finding(component, full, LossImmutable, "append-only (chattr +a): it could not be quarantined nor purged")
	}
	if flags&flUserVisible != 0 {
		in.finding(component, full, LossFlags, fmt.Sprintf("carrying inode flags 0x%x (chattr) that the archive would drop", flags&flUserVisible))
	}
	return in.hashInline(f, full, sum)
}

// findMounts names every mount point at or under a component (bind mounts
// of the same filesystem included), as the component's path spells it.
func (c *Collector) findMounts(component, full string) {
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		real = full
	}
	for _, mp := range c.mounts {
		rel, err := filepath.Rel(real, mp)
		if err != nil || !filepath.IsLocal(rel) && rel != "." {
			continue
		}
		p := filepath.Join(full, rel)
		if rel == "." {
			c.finding(component, p, LossMount, "itself a mount point: it cannot be renamed into quarantine")
			continue
		}
		c.finding(component, p, LossMount, "a mount point (bind mount or another filesystem)")
	}
	// The component, or a directory inside it, bind-mounted somewhere else
	// (another instance's place): its files would leave that place too.
	elsewhere, err := MountedElsewhere(real)
	if err != nil {
		c.finding(component, full, LossMount, "the mount table cannot be read to check that it is mounted nowhere else: "+err.Error())
		return
	}
	for _, mp := range elsewhere {
		c.finding(component, full, LossMount, "also shown at "+mp+" by a bind mount: moving or purging it would change that place too")
	}
}

// linkCount is what the walk saw of a file with several names: its link
// count, how many of its names are inside the instance, and the first.
type linkCount struct {
	nlink, inside int
	component     string
	first         string
}

// findOutsideLinks names every file whose link count is higher than the
// number of its names inside the instance's components: another name,
// outside the instance, shares it. The archive can only hold a copy, and
// a restore from it would not share the file with that name any more.
func (c *Collector) findOutsideLinks() {
	for _, l := range c.linkCounts {
		if l.inside >= l.nlink {
			continue
		}
		out := l.nlink - l.inside
		c.finding(l.component, l.first, LossHardLinks, fmt.Sprintf(
			"hard-linked to %d name%s outside the instance (link count %d, %d inside): the archive holds a copy, and a restore from it would bring the file back alone, no longer shared with %s",
			out, kind.Plural(out, "", "s"), l.nlink, l.inside, kind.Plural(out, "that name", "those names")))
	}
}
