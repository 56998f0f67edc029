package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// metricStatus maps a status to the value of fleetsafe_backup_status.
func metricStatus(s string) int {
	switch s {
	case StatusFailed:
		return 2
	case StatusWarning:
		return 1
	}
	return 0
}

func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// Metrics renders the report in the Prometheus text format, for
// node_exporter's textfile collector.
func (r *Report) Metrics(files map[string]FileFacts) string {
	type key struct{ instance, component string }
	status := map[key]int{}
	for _, inst := range r.Instances {
		for _, c := range inst.Checks {
			k := key{inst.Name, c.Component}
			if v, seen := status[k]; !seen || metricStatus(c.Status) > v {
				status[k] = metricStatus(c.Status)
			}
		}
	}
	keys := make([]key, 0, len(status))
	for k := range status {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].instance != keys[j].instance {
			return keys[i].instance < keys[j].instance
		}
		return keys[i].component < keys[j].component
	})
	app := escapeLabel(r.App)
	labels := func(k key) string {
		return fmt.Sprintf(`app="%s",instance="%s",component="%s"`, app, escapeLabel(k.instance), escapeLabel(k.component))
	}
	var b strings.Builder
	b.WriteString("# HELP fleetsafe_backup_status Backup status per instance and component: 0 ok, 1 warning, 2 failed.\n")
	b.WriteString("# TYPE fleetsafe_backup_status gauge\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "fleetsafe_backup_status{%s} %d\n", labels(k), status[k])
	}
	b.WriteString("# HELP fleetsafe_backup_newest_timestamp_seconds Modification time of the newest backup, in seconds since the epoch.\n")
	b.WriteString("# TYPE fleetsafe_backup_newest_timestamp_seconds gauge\n")
	for _, k := range keys {
		if f, ok := files[k.instance+"\x00"+k.component]; ok {
			fmt.Fprintf(&b, "fleetsafe_backup_newest_timestamp_seconds{%s} %d\n", labels(k), f.MTime.Unix())
		}
	}
	b.WriteString("# HELP fleetsafe_backup_newest_size_bytes Size of the newest backup in bytes.\n")
	b.WriteString("# TYPE fleetsafe_backup_newest_size_bytes gauge\n")
	for _, k := range keys {
		if f, ok := files[k.instance+"\x00"+k.component]; ok {
			fmt.Fprintf(&b, "fleetsafe_backup_newest_size_bytes{%s} %d\n", labels(k), f.Size)
		}
	}
	b.WriteString("# HELP fleetsafe_backup_verify_timestamp_seconds When backup_verify last ran, in seconds since the epoch.\n")
	b.WriteString("# TYPE fleetsafe_backup_verify_timestamp_seconds gauge\n")
	fmt.Fprintf(&b, "fleetsafe_backup_verify_timestamp_seconds{app=\"%s\"} %d\n", app, r.VerifiedAt.Unix())
	writeSuccess(&b, app, 1)
	return b.String()
}

func writeSuccess(b *strings.Builder, app string, v int) {
	b.WriteString("# HELP fleetsafe_backup_verify_success 1 when the last backup_verify run checked the backups, 0 when it failed before checking (bad password, unreadable layout...).\n")
	b.WriteString("# TYPE fleetsafe_backup_verify_success gauge\n")
	fmt.Fprintf(b, "fleetsafe_backup_verify_success{app=\"%s\"} %d\n", app, v)
}

// FailedRunMetrics renders the metrics of a run that failed before
// checking anything: fleetsafe_backup_verify_success 0 and the time of
// the run, and none of the per-instance values of an earlier run, which
// would keep alerts green on stale news. app is "" when the layout could
// not be read.
func FailedRunMetrics(app string, at time.Time) string {
	var b strings.Builder
	a := escapeLabel(app)
	b.WriteString("# HELP fleetsafe_backup_verify_timestamp_seconds When backup_verify last ran, in seconds since the epoch.\n")
	b.WriteString("# TYPE fleetsafe_backup_verify_timestamp_seconds gauge\n")
	fmt.Fprintf(&b, "fleetsafe_backup_verify_timestamp_seconds{app=\"%s\"} %d\n", a, at.Unix())
	writeSuccess(&b, a, 0)
	return b.String()
}

// WriteFailedRunMetrics writes FailedRunMetrics atomically to path.
func WriteFailedRunMetrics(path, app string, at time.Time) error {
	return writeAtomic(path, FailedRunMetrics(app, at))
}

// WriteMetrics writes the metrics file atomically (temp file, fsync,
// rename), mode 0644 so that node_exporter can read it.
func (r *Report) WriteMetrics(path string) error { return writeAtomic(path, r.Metrics(r.facts)) }

func writeAtomic(path, content string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write metrics: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write metrics: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write metrics: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write metrics: %w", err)
	}
	// The rename itself survives a crash once the directory is synced.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
