package archive

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// mountPoints reads the mount points of this process's namespace from
// /proc/self/mountinfo. A bind mount of a directory of the same
// filesystem keeps its device number: only mountinfo shows it.
func mountPoints() ([]string, error) {
	table, err := mountTable()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(table))
	for _, e := range table {
		out = append(out, e.point)
	}
	return out, nil
}

// MountsUnder lists the mount points at or below path, sorted.
func MountsUnder(path string) ([]string, error) {
	all, err := mountPoints()
	if err != nil {
		return nil, err
	}
	path = filepath.Clean(path)
	var out []string
	for _, mp := range all {
		if mp == path || strings.HasPrefix(mp, path+"/") {
			out = append(out, mp)
		}
	}
	sort.Strings(out)
	return out, nil
}

// unescapeMount decodes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountEntry is one line of /proc/self/mountinfo: the filesystem's device
// (major:minor), the directory of that filesystem it shows (root) and where.
type mountEntry struct {
	dev, root, point string
}

func mountTable() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		out = append(out, mountEntry{dev: fields[2], root: unescapeMount(fields[3]), point: unescapeMount(fields[4])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return out, nil
}

// devString spells a device number as mountinfo does (major:minor).
func devString(dev uint64) string {
	major := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	return fmt.Sprintf("%d:%d", major, minor)
}

// MountedElsewhere lists the mount points outside path that show path, or
// something inside it, from the same filesystem (path bind-mounted
// elsewhere): what is renamed or removed under path would change there
// too. path must have no symbolic link in it.
func MountedElsewhere(path string) ([]string, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return nil, err
	}
	table, err := mountTable()
	if err != nil {
		return nil, err
	}
	dev := devString(uint64(st.Dev))
	path = filepath.Clean(path)
	// The mount through which path is reached: the longest mount point of
	// the same device at or above it.
	var home *mountEntry
	for i, e := range table {
		if e.dev == dev && within(path, e.point) && (home == nil || len(e.point) > len(home.point)) {
			home = &table[i]
		}
	}
	if home == nil {
		return nil, nil
	}
	inFS := filepath.Join(home.root, strings.TrimPrefix(path, home.point))
	var out []string
	for _, e := range table {
		if e.dev != dev || within(e.point, path) || e.point == home.point {
			continue
		}
		if within(e.root, inFS) {
			out = append(out, e.point)
		}
	}
	sort.Strings(out)
	return out, nil
}

// within reports whether p is dir or inside it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}
