package deploy_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// contractMetrics are the exporter's metric names (README, "Metrics"),
// each with whether its series carry the workflow label. Dashboards may use
// nothing else, except Prometheus's own "up" and the mixin's recording rules.
var contractMetrics = map[string]bool{
	"nebula_explorer_up":                                                  false,
	"nebula_explorer_jobs":                                                true,
	"nebula_explorer_jobs_created_total":                                  true,
	"nebula_explorer_jobs_finished_total":                                 true,
	"nebula_explorer_workflow_last_finish_timestamp_seconds":              true,
	"nebula_explorer_workflow_oldest_running_start_timestamp_seconds":     true,
	"nebula_explorer_workflow_last_job_status":                            true,
	"nebula_explorer_workflow_last_job_id":                                true,
	"nebula_explorer_workflow_last_job_run_duration_seconds":              true,
	"nebula_explorer_workflow_oldest_unfinished_create_timestamp_seconds": true,
	"nebula_explorer_tasks_finished_total":                                true,
	"nebula_explorer_last_sync_success_timestamp_seconds":                 false,
	"nebula_explorer_sync_duration_seconds":                               false,
	"nebula_explorer_exporter_build_info":                                 false,
	"nebula_explorer_syncs_total":                                         false,
	"nebula_explorer_api_requests_total":                                  false,
	"nebula_explorer_config_last_reload_successful":                       false,
	"nebula_explorer_config_last_reload_success_timestamp_seconds":        false,
	"nebula_explorer_workflows":                                           false,
}

// contractHistograms have _bucket, _sum and _count series; the value says
// whether they carry the workflow label.
var contractHistograms = map[string]bool{
	"nebula_explorer_job_run_duration_seconds":     true,
	"nebula_explorer_job_queue_duration_seconds":   true,
	"nebula_explorer_task_run_duration_seconds":    true,
	"nebula_explorer_api_request_duration_seconds": false,
}

// dashboardMetric reports whether name may appear in a dashboard query, and
// whether its series have the workflow label. The mixin's recording rules
// ("workflow:" or "workflow_status:" level) keep the workflow label.
func dashboardMetric(name string) (ok, hasWorkflow bool) {
	if name == "up" {
		return true, false
	}
	if w, ok := contractMetrics[name]; ok {
		return true, w
	}
	for h, w := range contractHistograms {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if name == h+suffix {
				return true, w
			}
		}
	}
	if recordedMetrics[name] {
		return true, true
	}
	return false, false
}

// recordedMetrics are the recording rules of deploy/prometheus (read once
// by TestMain's package init below).
var recordedMetrics = func() map[string]bool {
	var f rulesFile
	data, err := os.ReadFile("prometheus/recording_rules.yml")
	if err != nil {
		return nil
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil
	}
	m := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if strings.HasPrefix(r.Record, "workflow:") || strings.HasPrefix(r.Record, "workflow_status:") {
				m[r.Record] = true
			}
		}
	}
	return m
}()

// The mixin's defaults (deploy/mixin/config.libsonnet): the exporter's job
// selector and the label that tells Explorers apart.
const (
	grafanaJobMatcher    = `job="nebula_explorer"`
	grafanaExplorerLabel = "explorer"
)

const (
	grafanaDashboardsDir = "grafana/dashboards"
	grafanaMainDashboard = "grafana/dashboards/nebula-explorer.json"
	grafanaDatasourceRef = "${datasource}"
)

type grafanaDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaTarget struct {
	Exemplar   bool       `json:"exemplar"`
	RefID      string     `json:"refId"`
	Expr       string     `json:"expr"`
	Datasource *grafanaDS `json:"datasource"`
	Instant    bool       `json:"instant"`
	Format     string     `json:"format"`
	Hide       bool       `json:"hide"`
}

type grafanaPanel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Datasource  *grafanaDS      `json:"datasource"`
	Targets     []grafanaTarget `json:"targets"`
	Panels      []grafanaPanel  `json:"panels"` // a collapsed row's panels
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

type grafanaVariable struct {
	Name       string     `json:"name"`
	Type       string     `json:"type"`
	Query      any        `json:"query"` // a string, or {"query": "..."}
	Definition string     `json:"definition"`
	Datasource *grafanaDS `json:"datasource"`
	Multi      bool       `json:"multi"`
	IncludeAll bool       `json:"includeAll"`
	AllValue   string     `json:"allValue"`
}

// query is the variable's query text in either of Grafana's encodings.
func (v grafanaVariable) query() string {
	switch q := v.Query.(type) {
	case string:
		return q
	case map[string]any:
		return asStr(q["query"])
	}
	return ""
}

type grafanaDashboard struct {
	file          string
	raw           any
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string     `json:"name"`
			Expr       string     `json:"expr"`
			Datasource *grafanaDS `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
}

// queryPanels are the panels that query data: all but rows, with the
// panels of collapsed rows.
func (d *grafanaDashboard) queryPanels() []grafanaPanel {
	var out []grafanaPanel
	for _, p := range d.Panels {
		if p.Type == "row" {
			out = append(out, p.Panels...)
			continue
		}
		out = append(out, p)
	}
	return out
}

func loadDashboards(t *testing.T) []*grafanaDashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(grafanaDashboardsDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s (%v)", grafanaDashboardsDir, err)
	}
	var out []*grafanaDashboard
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := &grafanaDashboard{file: f}
		if err := json.Unmarshal(data, d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := json.Unmarshal(data, &d.raw); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, d)
	}
	return out
}

func TestDashboardIsWellFormed(t *testing.T) {
	dashboards := loadDashboards(t)
	uids := map[string]string{}
	for _, d := range dashboards {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid %q title %q: both must be set", d.file, d.UID, d.Title)
		}
		if prev, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share the uid %q", prev, d.file, d.UID)
		}
		uids[d.UID] = d.file
		if d.SchemaVersion < 36 {
			t.Errorf("%s: schemaVersion %d predates datasource references by uid", d.file, d.SchemaVersion)
		}
		if id := dig(d.raw, "id"); id != nil {
			t.Errorf("%s: id %v must be null in a provisioned dashboard", d.file, id)
		}

		ids := map[int]bool{}
		var all []grafanaPanel
		for _, p := range d.Panels {
			all = append(all, p)
			all = append(all, p.Panels...)
		}
		for _, p := range all {
			if p.ID == 0 || ids[p.ID] {
				t.Errorf("%s: panel %q has id %d: ids must be set and unique", d.file, p.Title, p.ID)
			}
			ids[p.ID] = true
		}

		for _, p := range d.queryPanels() {
			where := fmt.Sprintf("%s: panel %q", d.file, p.Title)
			if p.Title == "" {
				t.Errorf("%s: panel %d has no title", d.file, p.ID)
			}
			if p.Datasource == nil || p.Datasource.UID != grafanaDatasourceRef || p.Datasource.Type != "prometheus" {
				t.Errorf("%s: datasource %+v, want {prometheus %s}", where, p.Datasource, grafanaDatasourceRef)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s has no target", where)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.Datasource != nil && tg.Datasource.UID != grafanaDatasourceRef {
					t.Errorf("%s target %s: datasource %+v, want %s", where, tg.RefID, tg.Datasource, grafanaDatasourceRef)
				}
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("%s: target refId %q missing or repeated", where, tg.RefID)
				}
				refs[tg.RefID] = true
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s target %s has no expr", where, tg.RefID)
				}
				if tg.Hide {
					t.Errorf("%s target %s is hidden", where, tg.RefID)
				}
			}
		}
	}
	if _, ok := uids["nebula-explorer"]; !ok {
		t.Errorf("no dashboard has the uid nebula-explorer")
	}
}

func TestDashboardVariables(t *testing.T) {
	d := mainDashboard(t)
	vars := map[string]grafanaVariable{}
	for _, v := range d.Templating.List {
		// A variable may only use variables defined before it: Grafana
		// resolves them in order.
		for _, ref := range grafanaVarRefs(v.query()) {
			if _, ok := vars[ref]; !ok && !grafanaBuiltin(ref) {
				t.Errorf("variable %s uses $%s, which is not defined before it", v.Name, ref)
			}
		}
		vars[v.Name] = v
	}

	ds, ok := vars["datasource"]
	if !ok || ds.Type != "datasource" || ds.query() != "prometheus" {
		t.Errorf("want a variable datasource of type datasource over prometheus, got %+v", ds)
	}
	want := map[string]string{
		grafanaExplorerLabel: "nebula_explorer_up",
		"instance":           "nebula_explorer_up",
		"workflow":           "nebula_explorer_jobs",
	}
	for name, metric := range want {
		v, ok := vars[name]
		if !ok {
			t.Errorf("no variable %s", name)
			continue
		}
		if v.Type != "query" || v.Datasource == nil || v.Datasource.UID != grafanaDatasourceRef {
			t.Errorf("variable %s: type %q datasource %+v, want a query on %s", name, v.Type, v.Datasource, grafanaDatasourceRef)
		}
		m := grafanaLabelValues.FindStringSubmatch(v.query())
		if m == nil || m[1] != metric || m[3] != name || !strings.Contains(m[2], grafanaJobMatcher) {
			t.Errorf("variable %s: query %q, want label_values(%s{%s...}, %s)", name, v.query(), metric, grafanaJobMatcher, name)
		}
		if !v.Multi || !v.IncludeAll || v.AllValue != ".*" {
			t.Errorf("variable %s: multi %v includeAll %v allValue %q, want true true .*", name, v.Multi, v.IncludeAll, v.AllValue)
		}
	}
	if v := vars["instance"].query(); !strings.Contains(v, grafanaExplorerLabel+`=~"$`+grafanaExplorerLabel+`"`) {
		t.Errorf("variable instance: query %q must filter on $%s", v, grafanaExplorerLabel)
	}
	if v := vars["workflow"].query(); !strings.Contains(v, grafanaExplorerLabel+`=~"$`+grafanaExplorerLabel+`"`) || !strings.Contains(v, `instance=~"$instance"`) {
		t.Errorf("variable workflow: query %q must filter on $%s and $instance", v, grafanaExplorerLabel)
	}

	// Every $var anywhere in the dashboard exists.
	used := map[string]bool{}
	walkStrings(d.raw, func(s string) {
		for _, ref := range grafanaVarRefs(s) {
			used[ref] = true
			if _, ok := vars[ref]; !ok && !grafanaBuiltin(ref) {
				t.Errorf("$%s is used (in %q) but not defined", ref, s)
			}
		}
	})
	for name := range vars {
		if !used[name] {
			t.Errorf("variable %s is never used", name)
		}
	}
}

func TestDashboardQueriesUseContractMetricsAndFilters(t *testing.T) {
	d := mainDashboard(t)
	for _, p := range d.queryPanels() {
		for _, tg := range p.Targets {
			for _, problem := range checkDashboardExpr(tg.Expr) {
				t.Errorf("panel %q target %s: %s\n  expr: %s", p.Title, tg.RefID, problem, tg.Expr)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := grafanaLabelValues.FindStringSubmatch(v.query())
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, v.query())
			continue
		}
		if ok, _ := dashboardMetric(m[1]); !ok {
			t.Errorf("variable %s uses %s, which is not in the metric contract", v.Name, m[1])
		}
	}
}

func TestDashboardCoversTheIssue(t *testing.T) {
	// What the dashboard must show, by what its queries must contain.
	d := mainDashboard(t)
	var exprs []string
	var units []string
	for _, p := range d.queryPanels() {
		for _, tg := range p.Targets {
			exprs = append(exprs, p.Type+" "+tg.Expr)
		}
		units = append(units, p.FieldConfig.Defaults.Unit)
	}
	want := map[string]*regexp.Regexp{
		"status table: last job's status":       regexp.MustCompile(`^table nebula_explorer_workflow_last_job_status\{[^}]*\} == 1`),
		"status table: age of the last success": regexp.MustCompile(`^table time\(\) - .*nebula_explorer_workflow_last_finish_timestamp_seconds\{[^}]*status="success"`),
		"status table: last job id":             regexp.MustCompile(`(?s)^table .*nebula_explorer_workflow_last_job_id\{`),
		"status table: 24h failure ratio":       regexp.MustCompile(`^table workflow:nebula_explorer_jobs_failed_per_completed:ratio_rise1d\{`),
		"status table: oldest queued age":       regexp.MustCompile(`(?s)^table .*time\(\) - nebula_explorer_workflow_oldest_unfinished_create_timestamp_seconds\{[^}]*status="preparing"`),
		"status table: oldest running age":      regexp.MustCompile(`(?s)^table .*time\(\) - nebula_explorer_workflow_oldest_running_start_timestamp_seconds\{`),
		"slowest tasks (p95)":                   regexp.MustCompile(`(?s)histogram_quantile\(0\.95, .*nebula_explorer_task_run_duration_seconds_bucket`),
		"failing tasks":                         regexp.MustCompile(`nebula_explorer_tasks_finished_total\{[^}]*status="failed"`),
		"run time quantiles over a day":         regexp.MustCompile(`workflow:nebula_explorer_job_run_duration_seconds:p95_rate1d\{`),
		"queue time quantiles over a day":       regexp.MustCompile(`workflow:nebula_explorer_job_queue_duration_seconds:p95_rate1d\{`),
		"run time heatmap":                      regexp.MustCompile(`^heatmap .*nebula_explorer_job_run_duration_seconds_bucket`),
		"syncs by result":                       regexp.MustCompile(`sum by \(kind, result\) \(rate\(nebula_explorer_syncs_total\{`),
		"API requests by result":                regexp.MustCompile(`sum by \(endpoint, result\) \(rate\(nebula_explorer_api_requests_total\{`),
		"sync duration":                         regexp.MustCompile(`nebula_explorer_sync_duration_seconds\{`),
		"Prometheus can scrape it":              regexp.MustCompile(`^stat up\{`),
		"the exporter syncs":                    regexp.MustCompile(`^stat nebula_explorer_up\{`),
	}
	for what, re := range want {
		if !slices.ContainsFunc(exprs, re.MatchString) {
			t.Errorf("no panel shows %s (no query matches %s)", what, re)
		}
	}
	for _, u := range []string{"opm", "s", "percentunit"} {
		if !slices.Contains(units, u) {
			t.Errorf("no panel has the unit %s", u)
		}
	}
	// Latency panels show exemplars (job ids).
	exemplars := 0
	for _, p := range d.queryPanels() {
		for _, tg := range p.Targets {
			if tg.Exemplar {
				exemplars++
				if !strings.Contains(tg.Expr, "duration_seconds_bucket") {
					t.Errorf("panel %q: exemplars on %s, which is no latency histogram", p.Title, tg.Expr)
				}
			}
		}
	}
	if exemplars < 2 {
		t.Errorf("%d targets with exemplars, want the run-time and queue-time panels", exemplars)
	}
	// Alert annotations from ALERTS.
	if len(d.Annotations.List) == 0 || !slices.ContainsFunc(d.Annotations.List, func(a struct {
		Name       string     `json:"name"`
		Expr       string     `json:"expr"`
		Datasource *grafanaDS `json:"datasource"`
	}) bool {
		return strings.HasPrefix(a.Expr, "ALERTS{") && a.Datasource != nil && a.Datasource.UID == grafanaDatasourceRef
	}) {
		t.Error("no annotation from ALERTS")
	}
	// Rates over $__rate_interval or $__range, or day-long windows taken
	// from recording rules: never a fixed window on raw series.
	window := regexp.MustCompile(`\[([^\]]*)\]`)
	for _, e := range exprs {
		for _, m := range window.FindAllStringSubmatch(e, -1) {
			if m[1] != "$__rate_interval" && m[1] != "$__range" {
				t.Errorf("range [%s] in %s: use $__rate_interval or $__range", m[1], e)
			}
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, URL, Access string
		} `yaml:"datasources"`
	}
	readYAML(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("datasource provisioning: apiVersion %d, %d datasources; want 1 and 1", ds.APIVersion, len(ds.Datasources))
	}
	if d := ds.Datasources[0]; d.UID != "prometheus" || d.Type != "prometheus" || d.URL != "http://prometheus:9090" || d.Access != "proxy" {
		t.Errorf("datasource %+v, want uid prometheus, type prometheus, url http://prometheus:9090, access proxy", d)
	}

	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "grafana/provisioning/dashboards/dashboards.yml", &dp)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("dashboard provisioning %+v, want one file provider on /var/lib/grafana/dashboards", dp)
	}

	// docker-compose mounts both where the provisioning expects them.
	var compose struct {
		Services map[string]struct {
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	readYAML(t, "docker-compose.yml", &compose)
	vols := compose.Services["grafana"].Volumes
	for _, want := range []string{
		"./grafana/dashboards:/var/lib/grafana/dashboards:ro",
		"./grafana/provisioning/datasources:/etc/grafana/provisioning/datasources:ro",
		"./grafana/provisioning/dashboards:/etc/grafana/provisioning/dashboards:ro",
	} {
		if !slices.Contains(vols, want) {
			t.Errorf("docker-compose grafana volumes %v lack %s", vols, want)
		}
	}
	var raw map[string]any
	readYAML(t, "docker-compose.yml", &raw)
	if _, ok := dig(raw, "services", "prometheus").(map[string]any); !ok {
		t.Error("docker-compose has no prometheus service for the datasource's http://prometheus:9090")
	}
}

func mainDashboard(t *testing.T) *grafanaDashboard {
	t.Helper()
	for _, d := range loadDashboards(t) {
		if d.file == grafanaMainDashboard {
			return d
		}
	}
	t.Fatalf("%s not found", grafanaMainDashboard)
	return nil
}

var (
	grafanaVarRef      = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z_][A-Za-z0-9_]*)(?::[^\]]*)?\]\]`)
	grafanaLabelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
)

// grafanaVarRefs lists the variables s refers to.
func grafanaVarRefs(s string) []string {
	var out []string
	for _, m := range grafanaVarRef.FindAllStringSubmatch(s, -1) {
		for _, g := range m[1:] {
			if g != "" {
				out = append(out, g)
			}
		}
	}
	return out
}

// grafanaBuiltin: Grafana's global variables ($__interval, $__all, ...).
func grafanaBuiltin(name string) bool { return strings.HasPrefix(name, "__") }

// walkStrings calls f on every string in a decoded JSON value.
func walkStrings(v any, f func(string)) {
	switch v := v.(type) {
	case string:
		f(v)
	case []any:
		for _, e := range v {
			walkStrings(e, f)
		}
	case map[string]any:
		for _, e := range v {
			walkStrings(e, f)
		}
	}
}

var (
	promSelector = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^{}]*)\}`)
	promMatcher  = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "Inf", "NaN"}
)

// checkDashboardExpr returns what is wrong with a panel query: a metric
// outside the contract, or a selector without the job, Explorer and instance
// (and, where the metric has it, workflow) filter. A light reading of PromQL, enough
// for dashboard queries: selectors, ranges, grouping clauses, functions.
func checkDashboardExpr(expr string) []string {
	var problems []string
	for _, m := range promSelector.FindAllStringSubmatch(expr, -1) {
		metric, body := m[1], m[2]
		if metric == "" {
			problems = append(problems, fmt.Sprintf("selector {%s} without a metric name", body))
			continue
		}
		ok, hasWorkflow := dashboardMetric(metric)
		if !ok {
			problems = append(problems, fmt.Sprintf("metric %s is not in the metric contract", metric))
			continue
		}
		matchers := map[string]string{}
		for _, part := range strings.Split(body, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			mm := promMatcher.FindStringSubmatch(part)
			if mm == nil {
				problems = append(problems, fmt.Sprintf("cannot read matcher %q of %s", part, metric))
				continue
			}
			matchers[mm[1]] = mm[2] + `"` + mm[3] + `"`
		}
		want := map[string]string{"job": `="nebula_explorer"`, grafanaExplorerLabel: `=~"$` + grafanaExplorerLabel + `"`, "instance": `=~"$instance"`}
		if hasWorkflow {
			want["workflow"] = `=~"$workflow"`
		}
		for label, w := range want {
			if matchers[label] != w {
				problems = append(problems, fmt.Sprintf("%s lacks the filter %s%s", metric, label, w))
			}
		}
	}
	rest := promSelector.ReplaceAllString(expr, " SELECTOR ")
	rest = promRange.ReplaceAllString(rest, " ")
	rest = promGrouping.ReplaceAllString(rest, " ")
	for _, loc := range promIdent.FindAllStringIndex(rest, -1) {
		name := rest[loc[0]:loc[1]]
		if name == "SELECTOR" || slices.Contains(promKeywords, name) {
			continue
		}
		if loc[0] > 0 && (rest[loc[0]-1] >= '0' && rest[loc[0]-1] <= '9' || rest[loc[0]-1] == '.') {
			continue // the exponent or unit of a number, e.g. 1e3
		}
		if strings.HasPrefix(strings.TrimLeft(rest[loc[1]:], " \t\n"), "(") {
			continue // a function or aggregation
		}
		if ok, _ := dashboardMetric(name); ok {
			problems = append(problems, fmt.Sprintf("metric %s is used without the job/explorer/instance filter", name))
		} else {
			problems = append(problems, fmt.Sprintf("%s is neither a contract metric nor PromQL", name))
		}
	}
	return problems
}

func TestCheckDashboardExprCatchesMistakes(t *testing.T) {
	const jf = `job="nebula_explorer", explorer=~"$explorer", instance=~"$instance"`
	for _, tc := range []struct {
		expr string
		ok   bool
	}{
		{`sum by (status) (nebula_explorer_jobs{` + jf + `, workflow=~"$workflow"})`, true},
		{`time() - nebula_explorer_last_sync_success_timestamp_seconds{` + jf + `}`, true},
		{`histogram_quantile(0.95, sum by (le) (rate(nebula_explorer_job_run_duration_seconds_bucket{` + jf + `, workflow=~"$workflow"}[$__rate_interval])))`, true},
		{`histogram_quantile(0.95, sum by (endpoint, le) (rate(nebula_explorer_api_request_duration_seconds_bucket{` + jf + `}[$__rate_interval])))`, true},
		{`workflow:nebula_explorer_jobs_failed_per_completed:ratio_rise1d{` + jf + `, workflow=~"$workflow"}`, true},
		{`up{` + jf + `}`, true},
		{`sum(nebula_explorer_jobs)`, false},                                                     // no filter at all
		{`nebula_explorer_jobs{` + jf + `}`, false},                                              // no workflow filter
		{`nebula_explorer_up{job="nebula_explorer", instance=~"$instance"}`, false},              // no Explorer filter
		{`nebula_explorer_up{job=~"$job", explorer=~"$explorer", instance=~"$instance"}`, false}, // not the mixin's job
		{`nebula_explorer_jobs_total{` + jf + `, workflow=~"$workflow"}`, false},                 // not in the contract
		{`rate(workflow:nebula_explorer_jobs_created:rate5m[5m])`, false},                        // no such recording rule
	} {
		if got := checkDashboardExpr(tc.expr); (len(got) == 0) != tc.ok {
			t.Errorf("checkDashboardExpr(%s) = %v, want ok=%v", tc.expr, got, tc.ok)
		}
	}
}

// grafanaSelection is what a user picks in the dashboard's variables.
type grafanaSelection struct {
	name                         string
	explorer, instance, workflow string // "" for "All"
}

// grafanaInterpolate substitutes the dashboard's variables in expr as
// Grafana does for Prometheus: a value of a multi-value or "All" variable is
// regex-escaped, "All" becomes the variable's allValue; the interval
// variables get the values of a 5-minute view of a 30s-scraped Prometheus.
func grafanaInterpolate(t *testing.T, d *grafanaDashboard, expr string, sel grafanaSelection) string {
	t.Helper()
	vars := map[string]grafanaVariable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	value := func(name, picked string) string {
		v := vars[name]
		if picked == "" {
			if !v.IncludeAll || v.AllValue == "" {
				t.Fatalf("variable %s has no All value", name)
			}
			return v.AllValue
		}
		if v.Multi || v.IncludeAll {
			return grafanaRegexEscape(picked)
		}
		return picked
	}
	values := map[string]string{
		grafanaExplorerLabel: value(grafanaExplorerLabel, sel.explorer),
		"instance":           value("instance", sel.instance),
		"workflow":           value("workflow", sel.workflow),
		"datasource":         "prometheus",
		"__rate_interval":    "1m",
		"__interval":         "15s",
		"__interval_ms":      "15000",
		"__range":            "5m",
		"__range_s":          "300",
		"__range_ms":         "300000",
		"__rate_interval_ms": "60000",
	}
	return grafanaVarRef.ReplaceAllStringFunc(expr, func(ref string) string {
		name := grafanaVarRefs(ref)[0]
		v, ok := values[name]
		if !ok {
			t.Fatalf("no value for $%s in %s", name, expr)
		}
		return v
	})
}

// grafanaRegexEscape is Grafana's escaping of a multi-value variable's
// value for a PromQL regex matcher: a backslash, doubled for the string
// literal, before each regex metacharacter.
func grafanaRegexEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\^$.|?*+()[]{}`, r) {
			b.WriteString(`\\`)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestDashboardQueriesReturnData runs every query of the dashboard (panels
// and variables) against a real Prometheus that scrapes the exporter, which
// syncs with the simulator, after substituting the variables as a user
// would pick them: all workflows, then one workflow. Each must return data,
// so that no panel shows "No data" on the demo.
func TestDashboardQueriesReturnData(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts Prometheus, the exporter and the simulator")
	}
	d := mainDashboard(t)
	s := startStack(t)
	instance := strings.TrimPrefix(s.ExporterURL, "http://")

	// The variables' queries, as Grafana sends label_values(): the label's
	// values among the series the selector matches.
	labelValues := func(v grafanaVariable, sel grafanaSelection) ([]string, error) {
		m := grafanaLabelValues.FindStringSubmatch(grafanaInterpolate(t, d, v.query(), sel))
		if m == nil {
			return nil, fmt.Errorf("variable %s: cannot read %q", v.Name, v.query())
		}
		var values []string
		err := s.api("/api/v1/label/"+m[3]+"/values?match[]="+url.QueryEscape(m[1]+m[2]), &values)
		return values, err
	}
	// All Explorers and workflows of the stack's exporter.
	all := grafanaSelection{name: "all workflows", instance: instance}
	var workflowOptions, explorerOptions []string
	deadline := time.Now().Add(time.Minute)
	s.eventually(t, deadline, "the dashboard's variables list the stack's Explorer, exporter and workflows", func() (bool, string) {
		var problems []string
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			values, err := labelValues(v, all)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			want := map[string][]string{"instance": {instance}, "workflow": s.Workflows}[v.Name]
			for _, w := range want {
				if !slices.Contains(values, w) {
					problems = append(problems, fmt.Sprintf("variable %s offers %v, not %s", v.Name, values, w))
				}
			}
			switch v.Name {
			case "workflow":
				workflowOptions = values
			case grafanaExplorerLabel:
				// The shipped prometheus.yml names the stack's one Explorer.
				if len(values) != 1 || values[0] == "" {
					problems = append(problems, fmt.Sprintf("variable %s offers %q, want the stack's one Explorer", v.Name, values))
				}
				explorerOptions = values
			}
		}
		return len(problems) == 0, strings.Join(problems, "; ")
	})

	// One workflow, picked from the variable's options: one that has
	// succeeded before, as a user looking into a workflow would.
	var picked string
	s.eventually(t, deadline, "a workflow with a successful job exists", func() (bool, string) {
		res, err := s.query(`nebula_explorer_workflow_last_finish_timestamp_seconds{status="success"}`)
		if err != nil {
			return false, err.Error()
		}
		for _, w := range workflowOptions {
			if w == s.FailWorkflow {
				continue
			}
			for _, r := range res {
				if r.Metric["workflow"] == w {
					picked = w
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("successes: %v", res)
	})
	one := grafanaSelection{name: "workflow " + picked, explorer: explorerOptions[0], instance: instance, workflow: picked}

	// Rates need two samples within $__rate_interval: poll until every
	// query answers, then report those that never did.
	type query struct{ where, expr string }
	var queries []query
	for _, sel := range []grafanaSelection{all, one} {
		for _, p := range d.queryPanels() {
			for _, tg := range p.Targets {
				queries = append(queries, query{
					where: fmt.Sprintf("panel %q target %s (%s)", p.Title, tg.RefID, sel.name),
					expr:  grafanaInterpolate(t, d, tg.Expr, sel),
				})
			}
		}
		// The alert annotations: the failing workflow keeps an alert firing.
		for _, a := range d.Annotations.List {
			if a.Expr != "" {
				queries = append(queries, query{
					where: fmt.Sprintf("annotation %q (%s)", a.Name, sel.name),
					expr:  grafanaInterpolate(t, d, a.Expr, sel),
				})
			}
		}
	}
	pending := queries
	s.eventually(t, time.Now().Add(90*time.Second), fmt.Sprintf("all %d panel queries return data", len(queries)), func() (bool, string) {
		var still []query
		var detail []string
		for _, q := range pending {
			res, err := s.query(q.expr)
			if err != nil || len(res) == 0 {
				still = append(still, q)
				detail = append(detail, fmt.Sprintf("%s: %v (no data)\n  %s", q.where, err, q.expr))
			}
		}
		pending = still
		return len(pending) == 0, "\n" + strings.Join(detail, "\n")
	})

	// A ratio or quantile over a window in which no job finished is NaN,
	// which Grafana draws as a gap. Over all workflows of the lively demo,
	// every panel must show a number once a minute of data has come in.
	// For a single workflow, NaN is only reported.
	hasNumber := func(res []stackSample) bool {
		return slices.ContainsFunc(res, func(r stackSample) bool { return r.Value[1] != "NaN" })
	}
	var numbers []query
	for _, q := range queries {
		if strings.HasSuffix(q.where, "("+all.name+")") {
			numbers = append(numbers, q)
		}
	}
	s.eventually(t, time.Now().Add(2*time.Minute), "every panel query over all workflows shows a number, not only NaN", func() (bool, string) {
		var still []query
		var detail []string
		for _, q := range numbers {
			if res, err := s.query(q.expr); err != nil || !hasNumber(res) {
				still = append(still, q)
				detail = append(detail, fmt.Sprintf("%s: %v %v", q.where, res, err))
			}
		}
		numbers = still
		return len(numbers) == 0, "\n" + strings.Join(detail, "\n")
	})
	for _, q := range queries {
		if res, err := s.query(q.expr); err == nil && !hasNumber(res) {
			t.Logf("%s: only NaN right now (%d series)", q.where, len(res))
		}
	}

	// The status table answers "which workflows are red": its first query
	// (the latest job's status) has a line for every workflow (each has
	// finished jobs) and shows the simulator's failing workflow as failed.
	var table grafanaPanel
	for _, p := range d.queryPanels() {
		if p.Type == "table" && strings.Contains(p.Targets[0].Expr, "nebula_explorer_workflow_last_job_status") {
			table = p
		}
	}
	if len(table.Targets) == 0 {
		t.Fatal("no status table")
	}
	res, err := s.query(grafanaInterpolate(t, d, table.Targets[0].Expr, all))
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, r := range res {
		status[r.Metric["workflow"]] = r.Metric["status"]
	}
	if status[s.FailWorkflow] != "failed" {
		t.Errorf("status table: %s shows %q, want failed (all: %v)", s.FailWorkflow, status[s.FailWorkflow], status)
	}
	if len(status) != len(s.Workflows) {
		t.Errorf("status table: %d workflows %v, want one line for each of %q", len(status), status, s.Workflows)
	}
}
