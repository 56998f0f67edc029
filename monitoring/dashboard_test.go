package monitoring_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
)

// targetLabels are set by Prometheus on every scraped series.
var targetLabels = []string{"instance", "job"}

// nodeExporterMetrics are node_exporter's own metrics that the rules use,
// with their labels: not written by backup_verify.
var nodeExporterMetrics = map[string][]string{"node_textfile_scrape_error": targetLabels}

// emitted returns, per metric name, the label names the real files carry,
// target labels included.
func (r *real) emitted(t *testing.T) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for m, labels := range nodeExporterMetrics {
		out[m] = map[string]bool{}
		for _, l := range labels {
			out[m][l] = true
		}
	}
	for _, path := range r.hosts {
		for _, s := range readTextfile(t, path) {
			if out[s.name] == nil {
				out[s.name] = map[string]bool{}
			}
			for _, l := range labelNames(t, s.labels) {
				out[s.name][l] = true
			}
			for _, l := range targetLabels {
				out[s.name][l] = true
			}
		}
	}
	return out
}

// labelNames returns the names of a written label set `a="x",b="y"`.
func labelNames(t *testing.T, set string) []string {
	var out []string
	for i := 0; i < len(set); {
		eq := strings.IndexByte(set[i:], '=')
		require.True(t, eq > 0 && i+eq+1 < len(set) && set[i+eq+1] == '"', "label set %q", set)
		out = append(out, set[i:i+eq])
		j := i + eq + 2
		for ; j < len(set) && set[j] != '"'; j++ {
			if set[j] == '\\' {
				j++
			}
		}
		i = j + 1
		if i < len(set) && set[i] == ',' {
			i++
		}
	}
	return out
}

// use is what one PromQL expression asks for: each metric selected with
// the labels its matchers name, and the labels named by by(), without(),
// on(), ignoring(), group_left() and group_right().
type use struct {
	metrics  map[string][]string
	grouping []string
}

var promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "atan2": true}

var aggregations = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true}

// parseUse is a small PromQL lexer: enough to name every metric, matcher
// label and grouping label of the expressions written here. promtool
// checks the syntax itself.
func parseUse(t *testing.T, expr string) use {
	u := use{metrics: map[string][]string{}}
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9')
	}
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\n' || expr[i] == '\t') {
			i++
		}
		return i
	}
	// matchers parses {a="x", b=~"y"} from i (at '{') and returns the
	// label names and the index after '}'.
	matchers := func(i int) ([]string, int) {
		var names []string
		i++
		for {
			i = skipSpace(i)
			require.Less(t, i, len(expr), "unclosed { in %q", expr)
			if expr[i] == '}' {
				return names, i + 1
			}
			if expr[i] == ',' {
				i++
				continue
			}
			j := i
			for j < len(expr) && isIdent(expr[j], j == i) {
				j++
			}
			require.Greater(t, j, i, "matcher label at %d of %q", i, expr)
			names = append(names, expr[i:j])
			i = strings.IndexAny(expr[j:], `"'`)
			require.GreaterOrEqual(t, i, 0, "matcher value in %q", expr)
			i += j
			q := expr[i]
			for i++; i < len(expr) && expr[i] != q; i++ {
				if expr[i] == '\\' {
					i++
				}
			}
			i++
		}
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'':
			for i++; i < len(expr) && expr[i] != c; i++ {
				if expr[i] == '\\' {
					i++
				}
			}
			i++
		case c == '[':
			i += strings.IndexByte(expr[i:], ']') + 1
		case c == '{':
			names, next := matchers(i)
			t.Errorf("a selector without a metric name in %q: %v", expr, names)
			i = next
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++ // numbers, and durations such as 5m
			}
		case isIdent(c, true):
			j := i
			for j < len(expr) && isIdent(expr[j], j == i) {
				j++
			}
			word := expr[i:j]
			k := skipSpace(j)
			switch {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" || word == "group_left" || word == "group_right":
				if k < len(expr) && expr[k] == '(' {
					end := k + strings.IndexByte(expr[k:], ')')
					for _, l := range strings.Split(expr[k+1:end], ",") {
						if l = strings.TrimSpace(l); l != "" {
							u.grouping = append(u.grouping, l)
						}
					}
					k = end + 1
				}
				i = k
			case promqlKeywords[word] || aggregations[word]:
				i = j // aggregations may put by (...) before their (
			case k < len(expr) && expr[k] == '(':
				i = j // a function or an aggregation
			default:
				names := []string{}
				if k < len(expr) && expr[k] == '{' {
					names, k = matchers(k)
				} else {
					k = j
				}
				u.metrics[word] = append(u.metrics[word], names...)
				i = k
			}
		default:
			i++
		}
	}
	return u
}

// checkUse asserts that an expression uses only emitted metrics and labels;
// extra are further labels it names (legend, columns, templates) that
// must be on one of its metrics.
func checkUse(t *testing.T, where, expr string, emitted map[string]map[string]bool, extra []string) {
	u := parseUse(t, expr)
	assert.NotEmpty(t, u.metrics, "%s: %q selects no metric", where, expr)
	onSome := func(l string) bool {
		for m := range u.metrics {
			if emitted[m][l] {
				return true
			}
		}
		return false
	}
	for m, labels := range u.metrics {
		if !assert.Contains(t, emitted, m, "%s: metric %s is not written by backup_verify (%q)", where, m, expr) {
			continue
		}
		for _, l := range labels {
			assert.True(t, emitted[m][l], "%s: %s has no label %q (%q)", where, m, l, expr)
		}
	}
	for _, l := range append(u.grouping, extra...) {
		assert.True(t, onSome(l), "%s: no metric of %q has the label %q", where, expr, l)
	}
}

var legendLabel = regexp.MustCompile(`\{\{\s*\.?([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
var annotationLabel = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
var labelValues = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)

// grafanaVars gives a value to the dashboard's variables, as "All" does.
var grafanaVars = strings.NewReplacer("$app", ".*", "$host", ".*", "${app}", ".*", "${host}", ".*",
	"$__rate_interval", "5m", "$__interval", "1m", "$__range", "1d")

type dashQuery struct{ where, expr string }

// dashboardQueries walks the dashboard: every target's expr (with the
// labels of its legend and of the table columns named after labels) and
// every templating query.
func dashboardQueries(t *testing.T, d map[string]any) (queries []dashQuery, extras map[string][]string) {
	extras = map[string][]string{}
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			pm := p.(map[string]any)
			title, _ := pm["title"].(string)
			if sub, ok := pm["panels"].([]any); ok {
				walk(sub)
			}
			// Columns a table names after labels (overrides, organize).
			var columns []string
			if fc, ok := pm["fieldConfig"].(map[string]any); ok {
				for _, o := range fc["overrides"].([]any) {
					m := o.(map[string]any)["matcher"].(map[string]any)
					if name, _ := m["options"].(string); m["id"] == "byName" && !strings.HasPrefix(name, "Value") {
						columns = append(columns, name)
					}
				}
			}
			for _, tr := range asList(pm["transformations"]) {
				if opts, ok := tr.(map[string]any)["options"].(map[string]any); ok {
					if idx, ok := opts["indexByName"].(map[string]any); ok {
						for name := range idx {
							if !strings.HasPrefix(name, "Value") && name != "Time" {
								columns = append(columns, name)
							}
						}
					}
				}
			}
			targets := asList(pm["targets"])
			if pm["type"] != "row" {
				require.NotEmpty(t, targets, "panel %q has no query", title)
			}
			for i, tg := range targets {
				tm := tg.(map[string]any)
				expr, _ := tm["expr"].(string)
				require.NotEmpty(t, expr, "panel %q target %d has no expr", title, i)
				where := fmt.Sprintf("panel %q target %v", title, tm["refId"])
				queries = append(queries, dashQuery{where, expr})
				if legend, _ := tm["legendFormat"].(string); legend != "" {
					for _, m := range legendLabel.FindAllStringSubmatch(legend, -1) {
						extras[where] = append(extras[where], m[1])
					}
				}
				extras[where] = append(extras[where], columns...)
			}
		}
	}
	walk(d["panels"].([]any))
	for _, v := range d["templating"].(map[string]any)["list"].([]any) {
		vm := v.(map[string]any)
		if vm["type"] != "query" {
			continue
		}
		q, ok := vm["query"].(string)
		if !ok {
			q, _ = vm["query"].(map[string]any)["query"].(string)
		}
		m := labelValues.FindStringSubmatch(q)
		require.NotNil(t, m, "variable %v: only label_values(selector, label) is checked here, got %q", vm["name"], q)
		where := fmt.Sprintf("variable %v", vm["name"])
		queries = append(queries, dashQuery{where, m[1]})
		extras[where] = []string{m[2]}
	}
	return queries, extras
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func loadDashboard(t *testing.T) map[string]any {
	data, err := os.ReadFile(filepath.Join(fleettest.RepoRoot(), "monitoring", "grafana-dashboard.json"))
	require.NoError(t, err)
	var d map[string]any
	require.NoError(t, json.Unmarshal(data, &d), "the dashboard is JSON")
	for _, k := range []string{"title", "uid", "panels", "templating", "schemaVersion"} {
		require.Contains(t, d, k)
	}
	ids := map[float64]bool{}
	var walk func([]any)
	walk = func(panels []any) {
		for _, p := range panels {
			pm := p.(map[string]any)
			id, _ := pm["id"].(float64)
			assert.False(t, ids[id], "panel id %v twice", id)
			ids[id] = true
			assert.Contains(t, pm, "gridPos", "panel %v", pm["title"])
			walk(asList(pm["panels"]))
		}
	}
	walk(d["panels"].([]any))
	return d
}

// testDashboard: the Grafana dashboard parses; every query, variable,
// legend and table column names only metrics and labels the real
// backup_verify wrote (target labels instance and job aside), and so do
// the rules and annotations of alerts.yml; and every dashboard query,
// run by promtool on the real series, returns something.
func testDashboard(t *testing.T, r *real) {
	d := loadDashboard(t)
	emitted := r.emitted(t)
	queries, extras := dashboardQueries(t, d)
	require.Greater(t, len(queries), 10)
	for _, q := range queries {
		checkUse(t, q.where, grafanaVars.Replace(q.expr), emitted, extras[q.where])
	}
	for _, g := range loadRules(t).Groups {
		for _, rl := range g.Rules {
			var extra []string
			for _, a := range rl.Annotations {
				for _, m := range annotationLabel.FindAllStringSubmatch(a, -1) {
					extra = append(extra, m[1])
				}
			}
			checkUse(t, "alert "+rl.Alert, rl.Expr, emitted, extra)
		}
	}

	// Each query as a recording rule, and an alert when it is empty.
	var records, alerts []map[string]string
	var tests []map[string]any
	for i, q := range queries {
		rec := fmt.Sprintf("dashboard_query_%d", i)
		records = append(records, map[string]string{"record": rec, "expr": grafanaVars.Replace(q.expr)})
		name := fmt.Sprintf("DashboardQueryEmpty%d", i)
		alerts = append(alerts, map[string]string{"alert": name, "expr": "absent(" + rec + ")"})
		tests = append(tests, map[string]any{"eval_time": fmt.Sprintf("%ds", int64(base+(5*time.Minute).Seconds())), "alertname": name, "exp_alerts": []any{}})
		t.Logf("%s is %s: %s", name, q.where, q.expr)
	}
	runPromtoolTest(t, map[string]any{"groups": []map[string]any{{"name": "dashboard", "rules": append(records, alerts...)}}},
		map[string]any{"interval": "1m", "input_series": r.inputSeries(t, base+15*60), "alert_rule_test": tests})
}
