package softdelete

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// mountPoints reads the mount points of this process's namespace from
// /proc/self/mountinfo. A bind mount of a directory of the same
// filesystem keeps its device number: only mountinfo shows it.
func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		out = append(out, unescapeMount(fields[4]))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return out, nil
}

// mountsUnder lists the mount points at or below path, sorted.
func mountsUnder(path string) ([]string, error) {
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
