// Package measure times commands and reads their peak memory for the
// benchmarks.
package measure

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sample is one timed run.
type Sample struct {
	Wall   time.Duration
	MaxRSS int64 // KiB; 0 when unknown
}

// timeBin is GNU time. A Go process starts children with vfork, so their
// own rusage counts the parent's memory until exec; GNU time forks
// normally and reports the child's true peak.
const timeBin = "/usr/bin/time"

// Run runs argv, returning its wall time, peak RSS and combined output.
func Run(argv ...string) (Sample, string, error) {
	rssFile, err := os.CreateTemp("", "fleetsafe-rss-")
	if err != nil {
		return Sample{}, "", err
	}
	rssFile.Close()
	defer os.Remove(rssFile.Name())
	useTime := false
	if _, err := os.Stat(timeBin); err == nil {
		argv = append([]string{timeBin, "-f", "%M", "-o", rssFile.Name()}, argv...)
		useTime = true
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	s := Sample{Wall: time.Since(start)}
	if useTime {
		data, _ := os.ReadFile(rssFile.Name())
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		s.MaxRSS, _ = strconv.ParseInt(strings.TrimSpace(lines[len(lines)-1]), 10, 64)
	}
	return s, strings.TrimSpace(string(out)), err
}

// Median returns the median sample by wall time.
func Median(s []Sample) Sample {
	c := append([]Sample(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i].Wall < c[j].Wall })
	return c[len(c)/2]
}

// RSS formats a peak RSS.
func RSS(kib int64) string {
	if kib == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d MiB", kib>>10)
}
