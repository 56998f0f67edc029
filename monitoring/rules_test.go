// Package monitoring_test tests monitoring/alerts.yml with promtool
// against metrics files that the real backup_verify wrote, and checks
// that the Grafana dashboard asks only for what the code emits.
package monitoring_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// promtool returns the promtool of PATH. Without one the test is skipped,
// or fails when FLEETSAFE_REQUIRE_PROMTOOL=1 (as `make test` sets).
func promtool(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("FLEETSAFE_REQUIRE_PROMTOOL") == "1" {
		tb.Fatal("promtool is required (FLEETSAFE_REQUIRE_PROMTOOL=1) but not found; run `make promtool`")
	}
	tb.Skip("promtool not found; run `make promtool`")
	return ""
}

// sample is one line of a textfile: the series as written and its value.
type sample struct {
	name   string
	labels string // the inside of {...}, as written
	value  float64
}

// readTextfile reads the samples of a Prometheus textfile.
func readTextfile(t *testing.T, path string) []sample {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []sample
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		open, end := strings.Index(line, "{"), strings.LastIndex(line, "}")
		require.True(t, open > 0 && end > open, "sample line %q", line)
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		require.NoError(t, err, line)
		out = append(out, sample{name: line[:open], labels: line[open+1 : end], value: v})
	}
	require.NoError(t, sc.Err())
	return out
}

// runBackupVerify runs the real backup_verify binary as ansible-core
// would (an args file as its only argument) and returns its result.
func runBackupVerify(t *testing.T, bin string, f *fleettest.Fleet, args map[string]any) map[string]any {
	t.Helper()
	args["layout_file"] = f.LayoutFile
	data, err := json.Marshal(map[string]any{"ANSIBLE_MODULE_ARGS": args})
	require.NoError(t, err)
	argsFile := filepath.Join(t.TempDir(), "args.json")
	require.NoError(t, os.WriteFile(argsFile, data, 0o600))
	cmd := exec.Command(bin, argsFile)
	cmd.Env = append(os.Environ(), "FLEETSAFE_SYSTEMD_DIR="+f.SystemdDir)
	out, _ := cmd.Output() // a failed task exits 1 with its result on stdout
	var res map[string]any
	require.NoError(t, json.Unmarshal(out, &res), string(out))
	return res
}

// rule is one alerting rule of alerts.yml.
type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) rulesFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fleettest.RepoRoot(), "monitoring", "alerts.yml"))
	require.NoError(t, err)
	var rf rulesFile
	require.NoError(t, yaml.Unmarshal(data, &rf))
	require.NotEmpty(t, rf.Groups)
	return rf
}

// real is what the real backup_verify wrote for a fleet: a metrics file
// per host, and the result of the good run.
type real struct {
	f        *fleettest.Fleet
	dated    time.Time // the clock the fixture's backups are dated from
	archives string
	hosts    map[string]string // host:port of node_exporter -> metrics file
	res      map[string]any
}

// realMetrics: a fleet with a good instance, a truncated dump, backups 30
// hours old and three real soft deletions (purge due now, in a day, in 30
// days); the real backup_verify binary writes web-a's file, and web-b's
// from a run that fails on a wrong password.
func realMetrics(t *testing.T) *real {
	ctx := context.Background()
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme", "globex", "initech", "hooli", "umbrella", "wayne"}, DB: true, Backups: true})
	// The module is built before the clock starts: backups are dated
	// from now, the alerts judged from the verify run, and the time in
	// between ages every backup (testAlerts allows for it).
	bin := filepath.Join(fleettest.BuildModules(t, "backup_verify"), "backup_verify")
	now := time.Now()
	for _, n := range []string{"acme", "globex"} {
		latest, err := f.WriteBackups(ctx, n, now.Add(-time.Hour))
		require.NoError(t, err)
		if n == "globex" {
			require.NoError(t, os.Truncate(latest["database"], 2000))
		}
	}
	_, err := f.WriteBackups(ctx, "initech", now.Add(-30*time.Hour))
	require.NoError(t, err)
	archives := filepath.Join(t.TempDir(), "archives")
	retention := map[string]int{"hooli": 0, "umbrella": 1, "wayne": 30}
	for _, n := range []string{"hooli", "umbrella", "wayne"} {
		_, err := softdelete.Delete(ctx, f.Layout, softdelete.Request{Name: n, ArchiveDir: archives, Reason: "test",
			RetentionDays: retention[n], Options: f.Options()})
		require.NoError(t, err)
	}

	dir := t.TempDir()
	hosts := map[string]string{"web-a:9100": filepath.Join(dir, "a.prom"), "web-b:9100": filepath.Join(dir, "b.prom")}
	res := runBackupVerify(t, bin, f, map[string]any{"metrics_file": hosts["web-a:9100"], "archive_dir": archives,
		"fail_on": "never", "state_file": filepath.Join(dir, "state.json"), "drill": true})
	require.Equal(t, false, res["failed"], res["msg"])
	require.Equal(t, true, res["drill"].(map[string]any)["ok"], "the drill of the first instance in turn (acme) succeeded")
	bad := runBackupVerify(t, bin, f, map[string]any{"metrics_file": hosts["web-b:9100"], "archive_dir": archives,
		"login_host": "127.0.0.1", "login_user": "postgres", "login_password": "wrong-S3cret"})
	require.Equal(t, true, bad["failed"], "web-b's run fails before checking")
	return &real{f: f, dated: now, archives: archives, hosts: hosts, res: res}
}

// The test clock puts the run at base (seconds). Timestamps before it
// (backups 30 hours old) are negative: promtool takes them as they are.
const base = 10 * 60

// inputSeries models the scrape as Prometheus does it: the series of each
// file get the target labels instance and job; every timestamp gauge is
// shifted by one constant so that the run happens at test time base
// (differences to time() are kept). The series run to test time end.
func (r *real) inputSeries(t *testing.T, end int) []map[string]string {
	var runAt float64
	for _, s := range readTextfile(t, r.hosts["web-a:9100"]) {
		if s.name == "fleetsafe_backup_verify_timestamp_seconds" {
			runAt = s.value
		}
	}
	require.NotZero(t, runAt)
	shift := runAt - base
	var series []map[string]string
	seen := map[string]bool{}
	for _, host := range []string{"web-a:9100", "web-b:9100"} {
		for _, s := range readTextfile(t, r.hosts[host]) {
			v := s.value
			if strings.HasSuffix(s.name, "_timestamp_seconds") {
				v -= shift
			}
			sel := fmt.Sprintf(`%s{%s,instance=%q,job="node"}`, s.name, s.labels, host)
			require.False(t, seen[sel], "series %s written twice", sel)
			seen[sel] = true
			series = append(series, map[string]string{"series": sel, "values": fmt.Sprintf("%s+0x%d", strconv.FormatFloat(v, 'f', -1, 64), end/60+10)})
		}
	}
	return series
}

// runPromtoolTest writes the rules and a test file of one test group and
// runs promtool test rules on them.
func runPromtoolTest(t *testing.T, rules any, group map[string]any) {
	t.Helper()
	pt := promtool(t)
	work := t.TempDir()
	data, err := yaml.Marshal(rules)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(work, "rules.yml"), data, 0o644))
	data, err = yaml.Marshal(map[string]any{"rule_files": []string{"rules.yml"}, "evaluation_interval": "5m", "tests": []map[string]any{group}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(work, "test.yml"), data, 0o644))
	cmd := exec.Command(pt, "test", "rules", "test.yml")
	cmd.Dir = work
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool test rules on the real metrics:\n%s", out)
	require.Contains(t, string(out), "SUCCESS")
}

// TestMonitoring_RealBackupVerifyMetrics runs the alerting rules and the
// dashboard's queries on the files the real backup_verify wrote.
func TestMonitoring_RealBackupVerifyMetrics(t *testing.T) {
	promtool(t)
	r := realMetrics(t)
	t.Run("alerts", func(t *testing.T) { testAlerts(t, r) })
	t.Run("dashboard", func(t *testing.T) { testDashboard(t, r) })
}

// testAlerts: each alert of alerts.yml, run by promtool on the real
// files, fires for exactly the series it should, right after the run
// and up to 26 hours later. Annotations are tested by the hand-written
// tests of monitoring/tests/; they are left out here.
func testAlerts(t *testing.T, r *real) {
	f, res, archives := r.f, r.res, r.archives
	// What the result says, independently of the metrics file.
	type key struct{ name, component string }
	failed, warned := map[key]bool{}, map[key]bool{}
	for _, inst := range res["instances"].([]any) {
		im := inst.(map[string]any)
		for _, c := range im["checks"].([]any) {
			cm := c.(map[string]any)
			k := key{im["name"].(string), cm["component"].(string)}
			switch cm["status"] {
			case "failed":
				failed[k] = true
			case "warning":
				warned[k] = true
			}
		}
	}
	require.True(t, failed[key{"globex", "database"}], "the truncated dump failed")
	require.True(t, failed[key{"initech", "data"}], "the old backup failed freshness")
	for k := range warned {
		if failed[k] {
			delete(warned, k)
		}
	}

	series := r.inputSeries(t, base+27*3600)

	rf := loadRules(t)
	severity := map[string]string{}
	for gi := range rf.Groups {
		for ri := range rf.Groups[gi].Rules {
			r := &rf.Groups[gi].Rules[ri]
			severity[r.Alert] = r.Labels["severity"]
			r.Annotations = nil
		}
	}
	type alert map[string]any
	expect := func(name string, labels map[string]string) alert {
		l := map[string]string{"severity": severity[name], "job": "node"}
		for k, v := range labels {
			l[k] = v
		}
		return alert{"exp_labels": l}
	}
	app := f.App
	var broken, warning, stale, quarantined, dueSoon []alert
	for k := range failed {
		broken = append(broken, expect("FleetsafeBackupBroken", map[string]string{"app": app, "name": k.name, "component": k.component, "instance": "web-a:9100"}))
	}
	for k := range warned {
		warning = append(warning, expect("FleetsafeBackupWarning", map[string]string{"app": app, "name": k.name, "component": k.component, "instance": "web-a:9100"}))
	}
	for _, c := range []string{"config", "data", "database"} {
		stale = append(stale, expect("FleetsafeBackupStale", map[string]string{"app": app, "name": "initech", "component": c, "instance": "web-a:9100"}))
	}
	staleLater := append([]alert{}, stale...)
	for _, k := range []key{{"acme", "config"}, {"acme", "data"}, {"acme", "database"}, {"globex", "config"}, {"globex", "data"}} {
		staleLater = append(staleLater, expect("FleetsafeBackupStale", map[string]string{"app": app, "name": k.name, "component": k.component, "instance": "web-a:9100"}))
	}
	tss, err := softdelete.ListQuarantine(archives, app, time.Now())
	require.NoError(t, err)
	require.Len(t, tss, 3)
	for _, host := range []string{"web-a:9100", "web-b:9100"} {
		for _, q := range tss {
			l := map[string]string{"app": app, "name": q.Instance, "tombstone": q.ID, "state": "quarantined", "instance": host}
			quarantined = append(quarantined, expect("FleetsafeInstanceQuarantined", l))
			if q.Instance != "wayne" { // purge due now, and in a day
				dueSoon = append(dueSoon, expect("FleetsafePurgeDueWithinADay", l))
			}
		}
	}
	after := func(d time.Duration) string { return fmt.Sprintf("%ds", int64(base+d.Seconds())) }
	// The backups dated an hour before the fixture's clock turn 26 h old
	// 25 h after it: 25 h less the lag from that clock to the run (the
	// fixture's own work, minutes on a loaded machine) after the run.
	// The alert is looked at one evaluation (5 min) before and after.
	var runAt float64
	for _, s := range readTextfile(t, r.hosts["web-a:9100"]) {
		if s.name == "fleetsafe_backup_verify_timestamp_seconds" {
			runAt = s.value
		}
	}
	lag := time.Duration(runAt-float64(r.dated.UnixNano())/1e9) * time.Second
	require.Less(t, lag, 20*time.Hour, "the verify run came %v after the backups were dated", lag)
	turn := (25*time.Hour - lag).Truncate(5 * time.Minute)
	none := []alert{}
	tests := []map[string]any{
		{"eval_time": after(5 * time.Minute), "alertname": "FleetsafeBackupBroken", "exp_alerts": broken},
		{"eval_time": after(65 * time.Minute), "alertname": "FleetsafeBackupWarning", "exp_alerts": orNone(warning)},
		{"eval_time": after(5 * time.Minute), "alertname": "FleetsafeBackupStale", "exp_alerts": stale},
		{"eval_time": after(turn - 5*time.Minute), "alertname": "FleetsafeBackupStale", "exp_alerts": stale},
		// 25 hours later the backups taken an hour before the run are 26 h
		// old too; globex's truncated dump was written at the run.
		{"eval_time": after(turn + 10*time.Minute), "alertname": "FleetsafeBackupStale", "exp_alerts": staleLater},
		{"eval_time": after(5 * time.Minute), "alertname": "FleetsafeBackupVerifyNotRun", "exp_alerts": none},
		{"eval_time": after(26*time.Hour + 5*time.Minute), "alertname": "FleetsafeBackupVerifyNotRun", "exp_alerts": []alert{
			expect("FleetsafeBackupVerifyNotRun", map[string]string{"app": app, "instance": "web-a:9100"}),
			expect("FleetsafeBackupVerifyNotRun", map[string]string{"app": app, "instance": "web-b:9100"}),
		}},
		{"eval_time": after(5 * time.Minute), "alertname": "FleetsafeBackupVerifyFailed", "exp_alerts": []alert{
			expect("FleetsafeBackupVerifyFailed", map[string]string{"app": app, "instance": "web-b:9100"}),
		}},
		{"eval_time": after(2 * time.Hour), "alertname": "FleetsafeMetricsAbsent", "exp_alerts": none},
		{"eval_time": after(5 * time.Minute), "alertname": "FleetsafeInstanceQuarantined", "exp_alerts": quarantined},
		{"eval_time": after(5 * time.Minute), "alertname": "FleetsafePurgeDueWithinADay", "exp_alerts": dueSoon},
		{"eval_time": after(5 * time.Minute), "alertname": "FleetsafeDeletionUnfinished", "exp_alerts": none},
		{"eval_time": after(5 * time.Minute), "alertname": "FleetsafeQuarantineUnreadable", "exp_alerts": none},
		// A drill succeeded at the run; 45 days are tested by hand-written
		// series in monitoring/tests/.
		{"eval_time": after(26*time.Hour + 5*time.Minute), "alertname": "FleetsafeBackupDrillTooOld", "exp_alerts": none},
		// node_exporter's own metric is not in these files.
		{"eval_time": after(5 * time.Minute), "alertname": "FleetsafeTextfileUnreadable", "exp_alerts": none},
	}
	// Every rule of alerts.yml is exercised here.
	for name := range severity {
		found := false
		for _, tc := range tests {
			found = found || tc["alertname"] == name
		}
		require.True(t, found, "alert %s has no case against real metrics", name)
	}

	runPromtoolTest(t, rf, map[string]any{"interval": "1m", "input_series": series, "alert_rule_test": tests})
}

func orNone[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
