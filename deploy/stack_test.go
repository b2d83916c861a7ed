package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

// The end-to-end stack: the simulator (a live fake Explorer), the exporter,
// a real Prometheus loaded with deploy/prometheus's rule files and a real
// Alertmanager whose receivers all post to a webhook served by the test.
// Everything listens on 127.0.0.1 on free ports, runs from binaries built for
// the test, logs into a temporary directory and is stopped when the test
// ends; the logs are printed when the test fails.
//
// Prometheus is Prometheus 3 (prometheus3.sh builds it). What differs from
// the shipped configs, so that a test sees results in seconds rather than
// minutes:
//   - prometheus.yml: scrape and evaluation every 2s, scrape timeout 1s,
//     targets and Alertmanager on the test's ports (target labels kept),
//     rule_files pointing at copies of the shipped rule files whose only
//     change is that no group sets its own `interval` (the day-long windows'
//     5m would delay their first data by minutes);
//   - alertmanager.yml: group_wait 1s and group_interval 2s on every route,
//     and each receiver replaced by a webhook to the test (the "null"
//     receiver stays empty); routes, grouping and inhibit rules unchanged.
//
// The alert rules are not rewritten: NebulaExplorerJobFailed has no `for:`,
// so a failing workflow drives it to firing within a few scrapes, one alert
// per failed job. Alerts
// with `for: 5m` or more cannot fire within a test; their promtool unit
// tests (prometheus/rules*.test.yml) cover them.

const (
	// Seven workflows: the seventh, sssp_logistics (runs of about 30s), is
	// the one that fails, and bfs_social (about 8s) keeps succeeding, so that
	// failures and successes both show within the first minute. With six,
	// bfs_social is the only fast workflow: if it fails, the first success
	// (which the run-time recording rules need) comes minutes later.
	stackWorkflows     = 7
	stackFailWorkflow  = "sssp_logistics"
	stackJobs          = 2000
	stackTick          = 500 * time.Millisecond
	stackScrapeEvery   = 2 * time.Second
	stackStartDeadline = 90 * time.Second
)

// stack is a running end-to-end stack. The URLs have no trailing slash.
type stack struct {
	PrometheusURL   string
	ExporterURL     string
	SimulatorURL    string
	AlertmanagerURL string
	// Webhook records what Alertmanager notifies.
	Webhook *stackWebhook
	// Workflows are the simulator's workflow names; FailWorkflow, one of
	// them, is the one whose jobs always fail.
	Workflows    []string
	FailWorkflow string
	// Dir holds the configs, data and logs.
	Dir string
}

// startStack builds and starts the stack, waits until Prometheus has
// scraped the exporter successfully and the exporter has synced with the
// simulator (up and nebula_explorer_up are 1 in Prometheus), and stops
// everything when the test ends. It skips the test with -short, and when
// Prometheus 3 or prometheus-alertmanager is missing (fails in CI).
func startStack(t *testing.T) *stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end stack skipped with -short")
	}
	promBin := needPrometheus3(t, "prometheus")
	amBin := localtest.NeedTool(t, "prometheus-alertmanager")
	goBin := localtest.NeedTool(t, "go")

	dir := t.TempDir()
	s := &stack{Dir: dir}
	var logs []string // log files, printed on failure (registered first: runs last)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, f := range logs {
			b, _ := os.ReadFile(f)
			t.Logf("---- %s (last 60 lines) ----\n%s", filepath.Base(f), stackTail(string(b), 60))
		}
	})

	// Build both binaries (the go build cache makes a second build cheap).
	exporterBin := filepath.Join(dir, "nebula_explorer_exporter")
	simBin := filepath.Join(dir, "simulator")
	for _, b := range [][]string{{exporterBin, "."}, {simBin, "./deploy/simulator"}} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", b[0], b[1])
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("go build -o %s %s: %v\n%s", b[0], b[1], err, out)
		}
	}

	// The workflow names come from the workload the simulator generates.
	for _, w := range (explorertest.Workload{Workflows: stackWorkflows}).WorkflowList() {
		s.Workflows = append(s.Workflows, w.Name)
	}
	s.FailWorkflow = stackFailWorkflow
	if !slices.Contains(s.Workflows, s.FailWorkflow) {
		t.Fatalf("the simulator's %d workflows %q do not include %s", stackWorkflows, s.Workflows, s.FailWorkflow)
	}

	simAddr, exporterAddr, amAddr, promAddr := localtest.FreeAddr(t), localtest.FreeAddr(t), localtest.FreeAddr(t), localtest.FreeAddr(t)
	s.SimulatorURL = "http://" + simAddr
	s.ExporterURL = "http://" + exporterAddr
	s.AlertmanagerURL = "http://" + amAddr
	s.PrometheusURL = "http://" + promAddr

	// The webhook that stands for every Alertmanager receiver.
	s.Webhook = &stackWebhook{}
	hook := httptest.NewServer(s.Webhook)
	t.Cleanup(hook.Close)

	// Simulator.
	logs = append(logs, filepath.Join(dir, "simulator.log"))
	stackStart(t, logs[len(logs)-1], simBin,
		"--web.listen-address="+simAddr,
		"--tick="+stackTick.String(),
		fmt.Sprintf("--jobs=%d", stackJobs),
		fmt.Sprintf("--workflows=%d", stackWorkflows),
		"--fail-workflow="+s.FailWorkflow,
	)
	stackWaitListening(t, simAddr, logs[len(logs)-1])

	// Exporter.
	exporterConfig := filepath.Join(dir, "exporter.yml")
	stackWriteFile(t, exporterConfig, fmt.Sprintf(`explorer:
  url: %s
  username: root
  password: nebula
  graph_address: 127.0.0.1
  graph_port: 9669
`, s.SimulatorURL))
	logs = append(logs, filepath.Join(dir, "exporter.log"))
	stackStart(t, logs[len(logs)-1], exporterBin,
		"--config.file="+exporterConfig,
		"--web.listen-address="+exporterAddr,
		"--log.level=debug",
	)
	stackWaitListening(t, exporterAddr, logs[len(logs)-1])

	// Alertmanager.
	amConfig := filepath.Join(dir, "alertmanager.yml")
	stackWriteFile(t, amConfig, string(stackAlertmanagerConfig(t, hook.URL)))
	amData := filepath.Join(dir, "alertmanager-data")
	logs = append(logs, filepath.Join(dir, "alertmanager.log"))
	stackStart(t, logs[len(logs)-1], amBin,
		"--config.file="+amConfig,
		"--storage.path="+amData,
		"--web.listen-address="+amAddr,
		"--cluster.listen-address=",
	)

	// Prometheus.
	promConfig := filepath.Join(dir, "prometheus.yml")
	stackWriteFile(t, promConfig, string(stackPrometheusConfig(t, dir, promAddr, exporterAddr, amAddr)))
	promData := filepath.Join(dir, "prometheus-data")
	logs = append(logs, filepath.Join(dir, "prometheus.log"))
	stackStart(t, logs[len(logs)-1], promBin,
		"--config.file="+promConfig,
		"--storage.tsdb.path="+promData,
		"--web.listen-address="+promAddr,
		"--enable-feature=exemplar-storage",
	)

	deadline := time.Now().Add(stackStartDeadline)
	s.eventually(t, deadline, "Alertmanager is ready", func() (bool, string) {
		return stackReady(s.AlertmanagerURL + "/-/ready")
	})
	s.eventually(t, deadline, "Prometheus is ready", func() (bool, string) {
		return stackReady(s.PrometheusURL + "/-/ready")
	})
	s.eventually(t, deadline, "Prometheus scrapes the exporter and the exporter syncs with the simulator", func() (bool, string) {
		res, err := s.query(`up{job="nebula_explorer"} == 1 and on (instance) nebula_explorer_up == 1`)
		if err != nil {
			return false, err.Error()
		}
		return len(res) == 1, fmt.Sprintf("got %v", res)
	})
	return s
}

// stackSample is one element of an instant vector.
type stackSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (v stackSample) String() string { return fmt.Sprintf("%v=%v", v.Metric, v.Value[1]) }

// query runs an instant PromQL query and returns its vector.
func (s *stack) query(expr string) ([]stackSample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.api("/api/v1/query?query="+url.QueryEscape(expr), &data); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %q, want vector", expr, data.ResultType)
	}
	var out []stackSample
	if err := json.Unmarshal(data.Result, &out); err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	return out, nil
}

// api GETs a Prometheus HTTP API path and decodes the "data" of a success.
func (s *stack) api(path string, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.PrometheusURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("HTTP %d, undecodable answer: %v: %.300s", resp.StatusCode, err, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("HTTP %d: %s: %s", resp.StatusCode, env.ErrorType, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// eventually polls cond every 500ms until it holds or the deadline passes;
// then it fails the test with what cond said last.
func (s *stack) eventually(t *testing.T, deadline time.Time, what string, cond func() (ok bool, detail string)) {
	t.Helper()
	start := time.Now()
	for {
		ok, detail := cond()
		if ok {
			t.Logf("%s (after %s)", what, time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s; last: %s", what, detail)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended while waiting until %s", what)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// stackWebhook records Alertmanager's webhook notifications.
type stackWebhook struct {
	mu   sync.Mutex
	msgs []stackNotification
}

// stackNotification is Alertmanager's webhook payload (version 4), in part.
type stackNotification struct {
	Receiver string `json:"receiver"`
	Status   string `json:"status"`
	Alerts   []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
	GroupLabels map[string]string `json:"groupLabels"`
}

func (h *stackWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n stackNotification
	if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.msgs = append(h.msgs, n)
	h.mu.Unlock()
}

// Notifications returns what was received so far.
func (h *stackWebhook) Notifications() []stackNotification {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

// stackPrometheusConfig derives the test's Prometheus config from the
// shipped deploy/prometheus/prometheus.yml (see the top of this file).
func stackPrometheusConfig(t *testing.T, dir, promAddr, exporterAddr, amAddr string) []byte {
	t.Helper()
	const shipped = "prometheus/prometheus.yml"
	var cfg map[string]any
	readYAML(t, shipped, &cfg)

	every := stackScrapeEvery.String()
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		global = map[string]any{}
		cfg["global"] = global
	}
	global["scrape_interval"], global["evaluation_interval"], global["scrape_timeout"] = every, every, "1s"

	ruleFiles, _ := cfg["rule_files"].([]any)
	if len(ruleFiles) == 0 {
		t.Fatalf("%s: no rule_files", shipped)
	}
	for i, f := range ruleFiles {
		var rules map[string]any
		readYAML(t, filepath.Join(filepath.Dir(shipped), f.(string)), &rules)
		groups, _ := rules["groups"].([]any)
		for _, g := range groups {
			delete(g.(map[string]any), "interval")
		}
		out, err := yaml.Marshal(rules)
		if err != nil {
			t.Fatal(err)
		}
		copied := filepath.Join(dir, "rules-"+filepath.Base(f.(string)))
		stackWriteFile(t, copied, string(out))
		ruleFiles[i] = copied
	}

	ams, _ := cfg["alerting"].(map[string]any)["alertmanagers"].([]any)
	if len(ams) != 1 {
		t.Fatalf("%s: want one alerting.alertmanagers entry, got %d", shipped, len(ams))
	}
	ams[0] = map[string]any{"static_configs": []any{map[string]any{"targets": []any{amAddr}}}}

	targets := map[string]string{"prometheus": promAddr, "nebula_explorer": exporterAddr}
	scrapes, _ := cfg["scrape_configs"].([]any)
	seen := map[string]bool{}
	for _, sc := range scrapes {
		job := sc.(map[string]any)
		name, _ := job["job_name"].(string)
		addr, ok := targets[name]
		if !ok {
			t.Fatalf("%s: unexpected scrape job %q: teach stackPrometheusConfig its test target", shipped, name)
		}
		seen[name] = true
		delete(job, "scrape_interval")
		delete(job, "scrape_timeout")
		// The shipped target's labels (the Explorer label) stay.
		static := map[string]any{}
		if scs, _ := job["static_configs"].([]any); len(scs) > 0 {
			static, _ = scs[0].(map[string]any)
		}
		static["targets"] = []any{addr}
		job["static_configs"] = []any{static}
	}
	for name := range targets {
		if !seen[name] {
			t.Fatalf("%s: no scrape job %q", shipped, name)
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stackAlertmanagerConfig derives the test's Alertmanager config from the
// shipped deploy/alertmanager/alertmanager.yml (see the top of this file).
func stackAlertmanagerConfig(t *testing.T, hookURL string) []byte {
	t.Helper()
	const shipped = "alertmanager/alertmanager.yml"
	var cfg map[string]any
	readYAML(t, shipped, &cfg)
	// No mail is sent; the password file of the shipped config need not exist.
	if global, ok := cfg["global"].(map[string]any); ok {
		for k := range global {
			if strings.HasPrefix(k, "smtp_") {
				delete(global, k)
			}
		}
	}
	var fast func(route map[string]any)
	fast = func(route map[string]any) {
		route["group_wait"], route["group_interval"] = "1s", "2s"
		subs, _ := route["routes"].([]any)
		for _, r := range subs {
			fast(r.(map[string]any))
		}
	}
	root, ok := cfg["route"].(map[string]any)
	if !ok {
		t.Fatalf("%s: no route", shipped)
	}
	fast(root)
	receivers, _ := cfg["receivers"].([]any)
	for i, r := range receivers {
		name := r.(map[string]any)["name"].(string)
		rec := map[string]any{"name": name}
		if name != "null" {
			rec["webhook_configs"] = []any{map[string]any{"url": hookURL + "/?receiver=" + url.QueryEscape(name), "send_resolved": true}}
		}
		receivers[i] = rec
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func stackWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// stackStart starts a program with its output in logFile and stops it (by
// its own pid: SIGTERM, then SIGKILL after 5s) when the test ends.
func stackStart(t *testing.T, logFile, bin string, args ...string) {
	t.Helper()
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", bin, err)
	}
	fmt.Fprintf(f, "# started %s %s (pid %d)\n", bin, strings.Join(args, " "), cmd.Process.Pid)
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "# exited: %v\n", err)
		f.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill() //nolint:errcheck
			<-exited
		}
	})
}

// stackWaitListening waits up to 30s for a TCP listener on addr (the program
// logging into logFile started listening): the one wait-until-listening
// helper of the deploy tests.
func stackWaitListening(t *testing.T, addr, logFile string) {
	t.Helper()
	if err := localtest.WaitListening(addr, 30*time.Second); err != nil {
		b, _ := os.ReadFile(logFile)
		t.Fatalf("%v\n%s", err, stackTail(string(b), 40))
	}
}

// stackReady reports whether GET u answers 200.
func stackReady(u string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
	return resp.StatusCode == http.StatusOK, fmt.Sprintf("HTTP %d %s", resp.StatusCode, bytes.TrimSpace(body))
}

func stackTail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
