package instance

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

var durationUnits = map[string]time.Duration{
	"ns": time.Nanosecond, "us": time.Microsecond, "µs": time.Microsecond, "ms": time.Millisecond,
	"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour,
}

// ParseDuration parses Go-style durations extended with days and weeks:
// "26h", "2d", "1d12h", "90m", "1w".
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var total float64
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("malformed duration %q: expected a number at %q (examples: 26h, 2d, 1d12h)", orig, s)
		}
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("malformed duration %q: bad number %q", orig, s[:i])
		}
		s = s[i:]
		j := 0
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		unit, ok := durationUnits[s[:j]]
		if !ok {
			if j == 0 {
				return 0, fmt.Errorf("malformed duration %q: missing unit (use s, m, h, d or w)", orig)
			}
			return 0, fmt.Errorf("malformed duration %q: unknown unit %q (use s, m, h, d or w)", orig, s[:j])
		}
		s = s[j:]
		total += n * float64(unit)
	}
	if total <= 0 || total > math.MaxInt64 {
		return 0, fmt.Errorf("malformed duration %q: must be positive and below 290 years", orig)
	}
	return time.Duration(total), nil
}

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
}

// ParseSize parses a byte size: "512", "1KiB", "2MB", "1.5GiB". Decimal units
// (KB, MB…) are powers of 1000, binary ones (KiB, MiB…, K, M…) of 1024.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("malformed size %q: expected a number such as 1KiB or 2MB", s)
	}
	n, err := strconv.ParseFloat(t[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("malformed size %q: bad number %q", s, t[:i])
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("malformed size %q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, strings.TrimSpace(t[i:]))
	}
	v := n * mult
	if v < 0 || v > math.MaxInt64 {
		return 0, fmt.Errorf("malformed size %q: out of range", s)
	}
	return int64(v), nil
}

// ParsePercent parses "50%" as 0.5. The value must lie in (0, 100].
func ParsePercent(s string) (float64, error) {
	num, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	if !ok {
		return 0, fmt.Errorf("malformed percentage %q: expected a value such as 50%%", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 || f > 100 {
		return 0, fmt.Errorf("malformed percentage %q: expected a number above 0 and at most 100, followed by %%", s)
	}
	return f / 100, nil
}
