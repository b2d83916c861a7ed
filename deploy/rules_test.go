package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

const (
	rulesAlertmanagerYML = "alertmanager/alertmanager.yml"
	rulesRunbook         = "RUNBOOK.md"
	rulesRunbookURL      = "https://github.com/nebula-contrib/nebula_explorer_exporter/blob/main/deploy/RUNBOOK.md#"
)

// rulesTestFiles are the promtool unit tests of the rules.
var rulesTestFiles = []string{"prometheus/rules.test.yml", "prometheus/rules_days.test.yml"}

// rulesFile is a Prometheus rule file.
type rulesFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Record        string            `yaml:"record"`
			Alert         string            `yaml:"alert"`
			Expr          string            `yaml:"expr"`
			For           string            `yaml:"for"`
			KeepFiringFor string            `yaml:"keep_firing_for"`
			Labels        map[string]string `yaml:"labels"`
			Annotations   map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func rulesLoad(t *testing.T, path string) rulesFile {
	t.Helper()
	var f rulesFile
	readYAML(t, path, &f)
	return f
}

// rulesRun runs a tool from deploy/ and fails the test with its output when
// it fails.
// tool is a program name on PATH or a path.
func rulesRun(t *testing.T, tool string, args ...string) string {
	t.Helper()
	bin := tool
	if !filepath.IsAbs(tool) {
		bin = localtest.NeedTool(t, tool)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestMonitoringConfigs checks the Prometheus and Alertmanager configs, the
// rules and their unit tests with the real tools, lints all YAML under
// deploy/, and checks what the tools do not: every alert is documented,
// labelled and unit-tested both ways.
func TestMonitoringConfigs(t *testing.T) {
	// The rules run on Prometheus 3 (built by prometheus3.sh) and stay
	// compatible with Debian's Prometheus 2.42.
	for _, p := range []struct{ name, promtool string }{
		{"Prometheus 3", needPrometheus3(t, "promtool")},
		{"Prometheus 2.42 (Debian)", localtest.NeedTool(t, "promtool")},
	} {
		t.Run(p.name+": promtool check config accepts prometheus.yml", func(t *testing.T) {
			rulesRun(t, p.promtool, "check", "config", prometheusYML)
		})
		t.Run(p.name+": promtool check rules accepts the rule files", func(t *testing.T) {
			rulesRun(t, p.promtool, append([]string{"check", "rules"}, ruleFiles(t)...)...)
		})
		t.Run(p.name+": promtool test rules passes the unit tests", func(t *testing.T) {
			rulesRun(t, p.promtool, append([]string{"test", "rules"}, rulesTestFiles...)...)
		})
	}

	t.Run("amtool check-config accepts alertmanager.yml", func(t *testing.T) {
		rulesRun(t, "amtool", "check-config", rulesAlertmanagerYML)
	})

	t.Run("Alertmanager groups by alert, Explorer and workflow", func(t *testing.T) {
		var am struct {
			Route struct {
				GroupBy []string `yaml:"group_by"`
			} `yaml:"route"`
		}
		readYAML(t, rulesAlertmanagerYML, &am)
		if want := []string{"alertname", "explorer", "workflow"}; !slices.Equal(am.Route.GroupBy, want) {
			t.Errorf("route group_by %v, want %v", am.Route.GroupBy, want)
		}
	})

	t.Run("Alertmanager routes each severity to its receiver", func(t *testing.T) {
		for _, c := range []struct{ labels, receiver string }{
			{"severity=critical", "pager"},
			{"severity=warning", "team-email"},
			{"severity=info", "null"},
			{"severity=unexpected", "team-email"},
		} {
			rulesRun(t, "amtool", "config", "routes", "test", "--config.file="+rulesAlertmanagerYML,
				"--verify.receivers="+c.receiver, "alertname=NebulaExplorerJobFailed", "workflow=w", c.labels)
		}
	})

	t.Run("shellcheck passes on prometheus3.sh", func(t *testing.T) {
		rulesRun(t, "shellcheck", prometheus3Script)
	})

	t.Run("yamllint passes on all YAML under deploy", func(t *testing.T) {
		rulesRun(t, "yamllint", "-s", "-c", ".yamllint", ".")
	})

	t.Run("every alert has severity, summary, description and a runbook section", func(t *testing.T) {
		anchors := rulesRunbookAnchors(t)
		seen := map[string]string{} // anchor -> alert
		n := 0
		for _, path := range ruleFiles(t) {
			for _, g := range rulesLoad(t, path).Groups {
				for _, r := range g.Rules {
					if r.Alert == "" {
						continue
					}
					n++
					if s := r.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, s) {
						t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, s)
					}
					if strings.TrimSpace(r.Annotations["summary"]) == "" {
						t.Errorf("%s: no summary", r.Alert)
					}
					if d := r.Annotations["description"]; !strings.Contains(d, "$labels") && !strings.Contains(d, "$value") {
						t.Errorf("%s: description %q uses neither $labels nor $value", r.Alert, d)
					}
					u := r.Annotations["runbook_url"]
					anchor, ok := strings.CutPrefix(u, rulesRunbookURL)
					switch {
					case !ok:
						t.Errorf("%s: runbook_url %q does not start with %s", r.Alert, u, rulesRunbookURL)
					case anchor != strings.ToLower(r.Alert):
						t.Errorf("%s: runbook_url anchor %q, want %q", r.Alert, anchor, strings.ToLower(r.Alert))
					case !anchors[anchor]:
						t.Errorf("%s: %s has no heading for the anchor #%s", r.Alert, rulesRunbook, anchor)
					case seen[anchor] != "" && seen[anchor] != r.Alert:
						t.Errorf("%s: anchor #%s is %s's already", r.Alert, anchor, seen[anchor])
					}
					seen[anchor] = r.Alert
				}
			}
		}
		if n == 0 {
			t.Fatal("no alerting rules found")
		}
	})

	t.Run("every recording rule is used by an alert, another rule or the dashboard", func(t *testing.T) {
		dashboard, err := os.ReadFile(grafanaMainDashboard)
		if err != nil {
			t.Fatal(err)
		}
		var exprs []string
		for _, path := range ruleFiles(t) {
			for _, g := range rulesLoad(t, path).Groups {
				for _, r := range g.Rules {
					exprs = append(exprs, r.Expr)
				}
			}
		}
		recording, _ := e2eRuleNames(t)
		for _, name := range recording {
			used := strings.Contains(string(dashboard), name+"{")
			for _, e := range exprs {
				used = used || strings.Contains(e, name)
			}
			if !used {
				t.Errorf("recording rule %s is used nowhere", name)
			}
		}
	})

	t.Run("every alert is unit-tested firing and silent", func(t *testing.T) {
		fires, silent := map[string]bool{}, map[string]bool{}
		for _, f := range rulesTestFiles {
			var tests struct {
				Tests []struct {
					Name  string `yaml:"name"`
					Cases []struct {
						Alertname string `yaml:"alertname"`
						ExpAlerts []any  `yaml:"exp_alerts"`
					} `yaml:"alert_rule_test"`
				} `yaml:"tests"`
			}
			readYAML(t, f, &tests)
			for _, tc := range tests.Tests {
				for _, c := range tc.Cases {
					if len(c.ExpAlerts) > 0 {
						fires[c.Alertname] = true
					} else {
						silent[c.Alertname] = true
					}
				}
			}
		}
		_, alerts := e2eRuleNames(t)
		for _, a := range alerts {
			if !fires[a] {
				t.Errorf("%s: no unit test where it fires", a)
			}
			if !silent[a] {
				t.Errorf("%s: no unit test where it stays silent", a)
			}
		}
	})
}

// rulesRunbookAnchors returns the GitHub anchors of RUNBOOK.md's headings.
func rulesRunbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(rulesRunbook)
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile(`^#{1,6}\s+(.+?)\s*#*\s*$`)
	drop := regexp.MustCompile(`[^\p{L}\p{N}\s_-]`)
	anchors := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		m := heading.FindStringSubmatch(line)
		if fenced || m == nil {
			continue
		}
		slug := strings.ToLower(strings.TrimSpace(m[1]))
		slug = drop.ReplaceAllString(slug, "")
		anchors[strings.ReplaceAll(slug, " ", "-")] = true
	}
	return anchors
}

// Keep the decoder strict about what it ignores: a typo in a rule file's keys
// would otherwise make a check pass vacuously.
func TestRuleFilesHaveOnlyKnownKeys(t *testing.T) {
	for _, path := range ruleFiles(t) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f rulesFile
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

// TestAlertmanagerInhibitRules runs the real Alertmanager with the shipped
// alertmanager.yml, posts alerts to it and checks which it suppresses: an
// exporter that Prometheus cannot scrape, or that cannot sync with its
// Explorer, silences its own workflow alerts and API errors, and nobody
// else's.
func TestAlertmanagerInhibitRules(t *testing.T) {
	t.Parallel()
	amBin := localtest.NeedTool(t, "prometheus-alertmanager")
	dir := t.TempDir()
	addr := localtest.FreeAddr(t)
	logFile := filepath.Join(dir, "alertmanager.log")
	stackStart(t, logFile, amBin, "--config.file="+rulesAlertmanagerYML, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("alertmanager log:\n%s", stackTail(string(b), 40))
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for ok, detail := stackReady(base + "/-/ready"); !ok; ok, detail = stackReady(base + "/-/ready") {
		if time.Now().After(deadline) {
			t.Fatalf("Alertmanager not ready: %s", detail)
		}
		time.Sleep(200 * time.Millisecond)
	}

	type alert struct {
		labels         map[string]string
		wantSuppressed bool
	}
	// Three exporters: a cannot be scraped, b cannot sync, c is fine.
	l := func(instance string, kv ...string) map[string]string {
		m := map[string]string{"job": "nebula_explorer", "instance": instance, "explorer": strings.TrimSuffix(instance, ":9064")}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	alerts := []alert{
		{l("a:9064", "alertname", "NebulaExplorerExporterDown", "severity", "warning"), false},
		{l("a:9064", "alertname", "NebulaExplorerJobFailed", "severity", "critical", "workflow", "w1", "workflow_id", "1", "status", "failed", "job_id", "7"), true},
		{l("a:9064", "alertname", "NebulaExplorerWorkflowNoRecentSuccess", "severity", "critical", "workflow", "w2", "workflow_id", "2"), true},
		{l("b:9064", "alertname", "NebulaExplorerDown", "severity", "critical"), false},
		{l("b:9064", "alertname", "NebulaExplorerJobStuck", "severity", "warning", "workflow", "w3", "workflow_id", "3", "status", "running"), true},
		{l("b:9064", "alertname", "NebulaExplorerAPIErrors", "severity", "warning", "endpoint", "jobs"), true},
		{l("c:9064", "alertname", "NebulaExplorerJobFailed", "severity", "critical", "workflow", "w1", "workflow_id", "1", "status", "failed", "job_id", "8"), false},
		{l("c:9064", "alertname", "NebulaExplorerAPIErrors", "severity", "warning", "endpoint", "jobs"), false},
	}
	var post []map[string]any
	for _, a := range alerts {
		post = append(post, map[string]any{"labels": a.labels})
	}
	body, err := json.Marshal(post)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: HTTP %d", resp.StatusCode)
	}

	key := func(m map[string]string) string {
		return m["alertname"] + "/" + m["instance"] + "/" + m["workflow"] + "/" + m["job_id"]
	}
	var last string
	for {
		resp, err := http.Get(base + "/api/v2/alerts")
		if err != nil {
			t.Fatal(err)
		}
		var got []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				State string `json:"state"`
			} `json:"status"`
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		state := map[string]string{}
		for _, g := range got {
			state[key(g.Labels)] = g.Status.State
		}
		var wrong []string
		for _, a := range alerts {
			want := "active"
			if a.wantSuppressed {
				want = "suppressed"
			}
			if s := state[key(a.labels)]; s != want {
				wrong = append(wrong, fmt.Sprintf("%s is %q, want %q", key(a.labels), s, want))
			}
		}
		if len(wrong) == 0 {
			return
		}
		last = strings.Join(wrong, "; ")
		if time.Now().After(deadline) {
			t.Fatal(last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
