package backup

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockHolder tells whether a process holds the per-instance lock that
// instance_soft_delete, instance_restore and instance_purge take
// (<archive_dir>/<name>/.lock), without taking it: taking it, even
// shared, would make a deletion starting at that instant refuse. It reads
// /proc/locks and returns the holder's pid.
func lockHolder(archiveDir, name string) (int, bool) {
	if archiveDir == "" {
		return 0, false
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(archiveDir, name, ".lock"), &st); err != nil {
		return 0, false
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	want := fmt.Sprintf("%02x:%02x:%d", major, minor, st.Ino)
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 12172 fe:00:9996671 0 EOF
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] == "->" || fields[1] != "FLOCK" {
			continue
		}
		if fields[5] == want {
			pid, _ := strconv.Atoi(fields[4])
			return pid, true
		}
	}
	return 0, false
}
