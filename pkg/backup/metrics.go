package backup

import (
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/fleetsafe/fleetsafe/pkg/atomicfile"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
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

// escapeLabel makes v a label value of the text format: backslash, quote
// and newline escaped; bytes that are not UTF-8 (a directory name can
// hold any) and control characters other than newline (a carriage return
// ends a line for some readers) replaced by U+FFFD. One bad line makes
// node_exporter drop every textfile metric of the host.
func escapeLabel(v string) string {
	v = strings.Map(func(r rune) rune {
		if r != '\n' && unicode.IsControl(r) {
			return unicode.ReplacementChar
		}
		return r
	}, strings.ToValidUTF8(v, "\uFFFD"))
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// QuarantinedDeletion is one soft deletion with something still in
// quarantine, as the metrics show it.
type QuarantinedDeletion struct {
	Name       string
	ID         string // the tombstone's id
	State      string // the tombstone's state
	DeletedAt  time.Time
	PurgeAfter time.Time
}

// Quarantine is what the metrics say about the soft-deleted instances of
// the app: its deletions with something in quarantine, and whether the
// archive directory was read whole (ReadOK false: a tombstone could not be
// read, and Deletions holds only those that could).
type Quarantine struct {
	Deletions []QuarantinedDeletion
	ReadOK    bool
}

// MetricsOptions adds to the metrics of a report what the report itself
// does not hold.
type MetricsOptions struct {
	// Rules are the layout's backup rules: the smallest max_age of each
	// component's rules becomes fleetsafe_backup_max_age_seconds, so that
	// the stale alert follows the layout.
	Rules []instance.BackupRule
	// Quarantine, when not nil, adds the quarantine metrics of the app.
	Quarantine *Quarantine
	// DrillSuccess, when not nil, is the last successful restore drill of
	// each instance (backup_verify drill=true), kept across runs in the
	// drill's state file: fleetsafe_backup_drill_last_success_timestamp_seconds.
	DrillSuccess map[string]time.Time
}

// Metrics renders the report in the Prometheus text format, for
// node_exporter's textfile collector. Labels are app, name, component
// (and tombstone, state for the quarantine): never instance or job,
// which Prometheus sets on every scraped series (a metric label of that
// name becomes exported_instance under the default honor_labels: false,
// and rules written against it never match).
func (r *Report) Metrics(files map[string]FileFacts) string {
	return r.MetricsWith(files, MetricsOptions{})
}

// MetricsWith is Metrics with the max_age of opts.Rules and, when
// opts.Quarantine is not nil, the quarantine metrics of the app at the
// time of the run.
func (r *Report) MetricsWith(files map[string]FileFacts, opts MetricsOptions) string {
	type key struct{ name, component string }
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
		if keys[i].name != keys[j].name {
			return keys[i].name < keys[j].name
		}
		return keys[i].component < keys[j].component
	})
	app := escapeLabel(r.App)
	labels := func(k key) string {
		return fmt.Sprintf(`app="%s",name="%s",component="%s"`, app, escapeLabel(k.name), escapeLabel(k.component))
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
		if f, ok := files[k.name+"\x00"+k.component]; ok {
			fmt.Fprintf(&b, "fleetsafe_backup_newest_timestamp_seconds{%s} %d\n", labels(k), f.MTime.Unix())
		}
	}
	b.WriteString("# HELP fleetsafe_backup_newest_size_bytes Size of the newest backup in bytes.\n")
	b.WriteString("# TYPE fleetsafe_backup_newest_size_bytes gauge\n")
	for _, k := range keys {
		if f, ok := files[k.name+"\x00"+k.component]; ok {
			fmt.Fprintf(&b, "fleetsafe_backup_newest_size_bytes{%s} %d\n", labels(k), f.Size)
		}
	}
	maxAge := map[string]time.Duration{}
	for _, rule := range opts.Rules {
		if prev, seen := maxAge[rule.Component]; rule.MaxAge > 0 && (!seen || rule.MaxAge < prev) {
			maxAge[rule.Component] = rule.MaxAge
		}
	}
	b.WriteString("# HELP fleetsafe_backup_max_age_seconds The layout's max_age for the component's backups (the smallest of its rules), in seconds; absent when no rule sets one.\n")
	b.WriteString("# TYPE fleetsafe_backup_max_age_seconds gauge\n")
	for _, k := range keys {
		if d, ok := maxAge[k.component]; ok {
			fmt.Fprintf(&b, "fleetsafe_backup_max_age_seconds{%s} %d\n", labels(k), int64(d.Seconds()))
		}
	}
	writeRun(&b, app, r.VerifiedAt, 1)
	writeQuarantine(&b, app, opts.Quarantine, r.VerifiedAt)
	if opts.DrillSuccess != nil {
		names := make([]string, 0, len(opts.DrillSuccess))
		for n := range opts.DrillSuccess {
			names = append(names, n)
		}
		sort.Strings(names)
		b.WriteString("# HELP fleetsafe_backup_drill_last_success_timestamp_seconds When a full restore drill of the instance (every component restored from its newest backup into scratch and compared) last succeeded, in seconds since the epoch.\n")
		b.WriteString("# TYPE fleetsafe_backup_drill_last_success_timestamp_seconds gauge\n")
		for _, n := range names {
			fmt.Fprintf(&b, "fleetsafe_backup_drill_last_success_timestamp_seconds{app=\"%s\",name=\"%s\"} %d\n", app, escapeLabel(n), opts.DrillSuccess[n].Unix())
		}
	}
	return b.String()
}

func writeRun(b *strings.Builder, app string, at time.Time, success int) {
	b.WriteString("# HELP fleetsafe_backup_verify_timestamp_seconds When backup_verify last ran, in seconds since the epoch.\n")
	b.WriteString("# TYPE fleetsafe_backup_verify_timestamp_seconds gauge\n")
	fmt.Fprintf(b, "fleetsafe_backup_verify_timestamp_seconds{app=\"%s\"} %d\n", app, at.Unix())
	b.WriteString("# HELP fleetsafe_backup_verify_success 1 when the last backup_verify run checked the backups, 0 when it failed before checking (bad password, unreadable layout...).\n")
	b.WriteString("# TYPE fleetsafe_backup_verify_success gauge\n")
	fmt.Fprintf(b, "fleetsafe_backup_verify_success{app=\"%s\"} %d\n", app, success)
}

// writeQuarantine renders the quarantine of the app: two counts that are
// always there (0 included, so that "nothing quarantined" is told from
// "not measured"), whether the archive directory was read whole, and per
// deletion its deletion and purge times, labelled with the instance name,
// the tombstone id and its state.
func writeQuarantine(b *strings.Builder, app string, q *Quarantine, at time.Time) {
	if q == nil {
		return
	}
	due := 0
	for _, d := range q.Deletions {
		if !at.Before(d.PurgeAfter) {
			due++
		}
	}
	ok := 0
	if q.ReadOK {
		ok = 1
	}
	b.WriteString("# HELP fleetsafe_quarantine_read_success 1 when every tombstone of the archive directory was read, 0 when one could not be (the task failed naming it; the other deletions are still listed).\n")
	b.WriteString("# TYPE fleetsafe_quarantine_read_success gauge\n")
	fmt.Fprintf(b, "fleetsafe_quarantine_read_success{app=\"%s\"} %d\n", app, ok)
	b.WriteString("# HELP fleetsafe_quarantine_deletions Soft deletions with something still in quarantine on this host.\n")
	b.WriteString("# TYPE fleetsafe_quarantine_deletions gauge\n")
	fmt.Fprintf(b, "fleetsafe_quarantine_deletions{app=\"%s\"} %d\n", app, len(q.Deletions))
	b.WriteString("# HELP fleetsafe_quarantine_purges_due Quarantined deletions whose purge time had passed when backup_verify ran (pending purges).\n")
	b.WriteString("# TYPE fleetsafe_quarantine_purges_due gauge\n")
	fmt.Fprintf(b, "fleetsafe_quarantine_purges_due{app=\"%s\"} %d\n", app, due)
	labels := func(d QuarantinedDeletion) string {
		return fmt.Sprintf(`app="%s",name="%s",tombstone="%s",state="%s"`, app, escapeLabel(d.Name), escapeLabel(d.ID), escapeLabel(d.State))
	}
	b.WriteString("# HELP fleetsafe_quarantine_deleted_timestamp_seconds When the instance was soft-deleted, per deletion still in quarantine, in seconds since the epoch.\n")
	b.WriteString("# TYPE fleetsafe_quarantine_deleted_timestamp_seconds gauge\n")
	for _, d := range q.Deletions {
		fmt.Fprintf(b, "fleetsafe_quarantine_deleted_timestamp_seconds{%s} %d\n", labels(d), d.DeletedAt.Unix())
	}
	b.WriteString("# HELP fleetsafe_quarantine_purge_after_timestamp_seconds When instance_purge may remove the quarantine for good, per deletion still in quarantine, in seconds since the epoch.\n")
	b.WriteString("# TYPE fleetsafe_quarantine_purge_after_timestamp_seconds gauge\n")
	for _, d := range q.Deletions {
		fmt.Fprintf(b, "fleetsafe_quarantine_purge_after_timestamp_seconds{%s} %d\n", labels(d), d.PurgeAfter.Unix())
	}
}

// FailedRunMetrics renders the metrics of a run that failed before
// checking anything: fleetsafe_backup_verify_success 0 and the time of
// the run, and none of the per-instance values of an earlier run, which
// would keep alerts green on stale news. app is "" when the layout could
// not be read. The quarantine, when q is not nil, is read at the time of
// the run and does not depend on the backups, so it is still shown.
func FailedRunMetrics(app string, at time.Time, q *Quarantine) string {
	var b strings.Builder
	a := escapeLabel(app)
	writeRun(&b, a, at, 0)
	writeQuarantine(&b, a, q, at)
	return b.String()
}

// WriteFailedRunMetrics writes FailedRunMetrics atomically to path.
func WriteFailedRunMetrics(path, app string, at time.Time, q *Quarantine) error {
	return writeAtomic(path, FailedRunMetrics(app, at, q))
}

// WriteMetrics writes the metrics file atomically (temp file, fsync,
// rename), mode 0644 so that node_exporter can read it.
func (r *Report) WriteMetrics(path string) error { return r.WriteMetricsWith(path, MetricsOptions{}) }

// WriteMetricsWith is WriteMetrics with MetricsWith's options.
func (r *Report) WriteMetricsWith(path string, opts MetricsOptions) error {
	return writeAtomic(path, r.MetricsWith(r.facts, opts))
}

// writeAtomic writes content to path through a temporary file of its own
// in the same directory (a name node_exporter's textfile collector never
// reads: it does not end in .prom), fsynced, made 0644 and renamed over
// path, then syncs the directory. Two runs at once each rename a whole
// file of their own: the last one wins, neither is ever mixed with the
// other. On any failure the previous file stays as it was and the
// temporary file is removed.
func writeAtomic(path, content string) error {
	if err := atomicfile.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	// The temporary files of runs killed while writing: node_exporter
	// never reads them, but they would pile up.
	atomicfile.RemoveStale(path, staleTemp)
	return nil
}

// staleTemp is the age from which a temporary file is taken for the
// leftover of a run that was killed while writing, not for the file of a
// run writing now.
const staleTemp = time.Hour
