package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

// binary is the exporter, built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "exporter-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "nebula_explorer_exporter")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// exporterProcess is a running exporter binary.
type exporterProcess struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
}

// syncBuffer is the exporter's log, written by the process while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startExporter(t *testing.T, config string, args ...string) *exporterProcess {
	t.Helper()
	return startExporterWithFileLimit(t, 0, config, args...)
}

// startExporterWithFileLimit starts the exporter with at most files open
// file descriptors (0: as this process).
func startExporterWithFileLimit(t *testing.T, files int, config string, args ...string) *exporterProcess {
	t.Helper()
	e := &exporterProcess{addr: localtest.FreeAddr(t), stderr: &syncBuffer{}}
	args = append([]string{"--config.file=" + writeFile(t, "config.yml", config), "--web.listen-address=" + e.addr}, args...)
	e.cmd = exec.Command(binary, args...)
	if files > 0 {
		// ulimit sets the hard limit too, which Go cannot raise again.
		e.cmd = exec.Command("sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, files), binary}, args...)...)
	}
	e.cmd.Stderr = e.stderr
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.cmd.Process.Kill()
		e.cmd.Wait()
		if t.Failed() {
			t.Logf("exporter log:\n%s", e.stderr)
		}
	})
	waitListening(t, e.addr, 30*time.Second)
	return e
}

func (e *exporterProcess) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + e.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func configFor(url, password string) string {
	return fmt.Sprintf("explorer:\n  url: %s\n  username: root\n  password: %s\n  graph_address: 127.0.0.1\n  graph_port: 9669\n", url, password)
}

func TestEndToEnd(t *testing.T) {
	fake := explorertest.New()
	srv := explorertest.NewServer(fake)
	defer srv.Close()
	const secret = "n3bula-S3cret"
	fake.SetCredentials("root", secret)
	now := time.Now().UnixMilli()
	fake.AddJob(explorer.Job{WorkflowID: "4216617528", WorkflowName: `社区 "lpa"`, Status: explorer.StatusFailed,
		CreateTime: now - 60_000, RunBeginTime: now - 59_000, RunEndTime: now - 30_000})
	fake.AddJob(explorer.Job{WorkflowID: "4216617528", WorkflowName: `社区 "lpa"`, Status: explorer.StatusRunning,
		CreateTime: now - 20_000, RunBeginTime: now - 19_000})
	fake.AddJob(explorer.Job{WorkflowID: "9", WorkflowName: "bfs", Status: 7, CreateTime: now - 10_000})

	e := startExporter(t, configFor(srv.URL, secret))
	code, body := e.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("HTTP %d", code)
	}
	t.Run("metrics carry every contract family with the synced values", func(t *testing.T) {
		for _, want := range []string{
			"nebula_explorer_up 1",
			`nebula_explorer_jobs{status="failed",workflow="社区 \"lpa\"",workflow_id="4216617528"} 1`,
			`nebula_explorer_jobs{status="running",workflow="社区 \"lpa\"",workflow_id="4216617528"} 1`,
			`nebula_explorer_jobs{status="unknown",workflow="bfs",workflow_id="9"} 1`,
			`nebula_explorer_jobs{status="stopping",workflow="bfs",workflow_id="9"} 0`,
			`nebula_explorer_jobs_created_total{workflow="社区 \"lpa\"",workflow_id="4216617528"} 2`,
			`nebula_explorer_jobs_finished_total{status="failed",workflow="社区 \"lpa\"",workflow_id="4216617528"} 1`,
			`nebula_explorer_job_run_duration_seconds_count{status="failed",workflow="社区 \"lpa\"",workflow_id="4216617528"} 1`,
			`nebula_explorer_job_queue_duration_seconds_count{workflow="社区 \"lpa\"",workflow_id="4216617528"} 2`,
			`nebula_explorer_workflow_last_finish_timestamp_seconds{status="failed"`,
			`nebula_explorer_workflow_oldest_running_start_timestamp_seconds{workflow="社区 \"lpa\""`,
			"nebula_explorer_last_sync_success_timestamp_seconds ",
			"nebula_explorer_sync_duration_seconds ",
			"nebula_explorer_config_last_reload_successful 1",
			`nebula_explorer_api_requests_total{endpoint="connect",result="success"} 1`,
			`nebula_explorer_syncs_total{kind="full",result="success"} 1`,
			"nebula_explorer_config_last_reload_success_timestamp_seconds ",
			"nebula_explorer_exporter_build_info{",
			"go_goroutines ",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("missing %s", want)
			}
		}
	})
	t.Run("promtool check metrics is clean", func(t *testing.T) {
		promtool := localtest.NeedTool(t, "promtool")
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	})
	t.Run("the landing page links to the metrics", func(t *testing.T) {
		if code, page := e.get(t, "/"); code != 200 || !strings.Contains(page, `href="/metrics"`) {
			t.Errorf("HTTP %d:\n%s", code, page)
		}
	})
	t.Run("the landing page's profiling links answer", func(t *testing.T) {
		_, page := e.get(t, "/")
		links := regexp.MustCompile(`href="/?(debug/pprof/[^"]*)"`).FindAllStringSubmatch(page, -1)
		if len(links) < 2 {
			t.Fatalf("want the heap and CPU profile links:\n%s", page)
		}
		for _, l := range links {
			// The CPU profile link asks for 60 s; one second tells as much.
			path := "/" + strings.Replace(html.UnescapeString(l[1]), "seconds=60", "seconds=1", 1)
			if code, _ := e.get(t, path); code != 200 {
				t.Errorf("%s: HTTP %d", path, code)
			}
		}
	})
	t.Run("a failing Explorer still answers 200 with up 0", func(t *testing.T) {
		fake.SetQuirks(explorertest.Quirks{ErrorCode: explorer.CodeInternalDatabase})
		defer fake.SetQuirks(explorertest.Quirks{})
		code, body := e.get(t, "/metrics")
		if code != 200 || !strings.Contains(body, "nebula_explorer_up 0") ||
			!strings.Contains(body, `nebula_explorer_jobs_created_total{workflow="bfs",workflow_id="9"} 1`) {
			t.Errorf("HTTP %d:\n%s", code, body)
		}
	})
	t.Run("no page and no log line shows the password or the token", func(t *testing.T) {
		_, body := e.get(t, "/metrics")
		_, page := e.get(t, "/")
		for what, s := range map[string]string{"metrics": body, "landing page": page, "log": e.stderr.String()} {
			if strings.Contains(s, secret) || strings.Contains(s, "explorer_token") {
				t.Errorf("%s shows a secret", what)
			}
		}
	})
	t.Run("SIGTERM stops the exporter cleanly", func(t *testing.T) {
		e.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- e.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("exit: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("still running 10 s after SIGTERM")
		}
	})
}

func TestBadConfig(t *testing.T) {
	cases := []struct {
		name, config, wantLog string
	}{
		{"a missing url is named", "explorer:\n  username: root\n  password: x\n", "explorer.url"},
		{"an unknown key is named", configFor("http://127.0.0.1:1", "x") + "  passwd: x\n", `unknown key \"passwd\" in explorer`},
		{"a bad scheme is named", configFor("ftp://127.0.0.1:1", "x"), "explorer.url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, "--config.file="+writeFile(t, "config.yml", tc.config), "--web.listen-address="+localtest.FreeAddr(t))
			out, err := cmd.CombinedOutput()
			if err == nil || cmd.ProcessState.ExitCode() == 0 {
				t.Fatalf("exited 0:\n%s", out)
			}
			if !strings.Contains(string(out), tc.wantLog) {
				t.Errorf("output does not name %s:\n%s", tc.wantLog, out)
			}
		})
	}
	t.Run("a password in the URL is refused and never shown", func(t *testing.T) {
		for _, url := range []string{"http://root:s3cr%zzet@127.0.0.1:1", "http://root:s3cr/et@127.0.0.1:1"} {
			cmd := exec.Command(binary, "--config.file="+writeFile(t, "config.yml", configFor(url, "x")), "--web.listen-address="+localtest.FreeAddr(t))
			out, _ := cmd.CombinedOutput()
			if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "explorer.url: must not hold a user or password") {
				t.Errorf("%s: exit %d:\n%s", url, cmd.ProcessState.ExitCode(), out)
			}
			if strings.Contains(string(out), "s3cr") || strings.Contains(string(out), "%zz") {
				t.Errorf("the output shows part of the password:\n%s", out)
			}
		}
	})
	for _, flag := range []string{"--persistence.interval=0s", "--web.max-connections=0"} {
		t.Run(flag+" is refused", func(t *testing.T) {
			cmd := exec.Command(binary, "--config.file=config.yml", "--web.listen-address="+localtest.FreeAddr(t), flag)
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), strings.Split(flag, "=")[0]) {
				t.Errorf("exit %d:\n%s", code, out)
			}
		})
	}
	t.Run("--config.check validates and exits", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, binary, "--config.check", "--config.file=config.yml").CombinedOutput()
		if err != nil {
			t.Errorf("config.yml: %v\n%s", err, out)
		}
	})
}

func TestWebConfigBasicAuth(t *testing.T) {
	fake := explorertest.New()
	srv := explorertest.NewServer(fake)
	defer srv.Close()
	// bcrypt of "pw", as exporter-toolkit's web config wants it.
	web := writeFile(t, "web.yml", "basic_auth_users:\n  prom: $2a$10$R7cZbVoNb..DzCHUYvw/T.7vcFHoM.Sj6UNQ/ECywX.N/RhYuziKW\n")
	e := startExporter(t, configFor(srv.URL, "nebula"), "--web.config.file="+web)
	for _, path := range []string{"/metrics", "/debug/pprof/heap"} {
		if code, _ := e.get(t, path); code != http.StatusUnauthorized {
			t.Errorf("%s without credentials: HTTP %d, want 401", path, code)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+e.addr+path, nil)
		req.SetBasicAuth("prom", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s with credentials: HTTP %d, want 200", path, resp.StatusCode)
		}
	}
}

func TestExplorerOverTLSWithPasswordFile(t *testing.T) {
	fake := explorertest.New()
	fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: 1})
	srv := httptest.NewTLSServer(fake)
	defer srv.Close()
	ca := writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	password := writeFile(t, "password", "nebula\n")
	config := fmt.Sprintf("explorer:\n  url: %s\n  username: root\n  password_file: %s\n  graph_address: 127.0.0.1\n  graph_port: 9669\n"+
		"  tls_config:\n    ca_file: %s\n", srv.URL, password, ca)

	e := startExporter(t, config)
	if _, body := e.get(t, "/metrics"); !strings.Contains(body, "nebula_explorer_up 1") ||
		!strings.Contains(body, `nebula_explorer_jobs_created_total{workflow="bfs",workflow_id="1"} 1`) {
		t.Errorf("over TLS with the CA file and the password file:\n%s", body)
	}

	untrusted := startExporter(t, configFor(srv.URL, "nebula"))
	_, body := untrusted.get(t, "/metrics")
	if !strings.Contains(body, "nebula_explorer_up 0") || !strings.Contains(untrusted.stderr.String(), "certificate") {
		t.Errorf("without the CA the sync should fail on the certificate:\n%s", untrusted.stderr)
	}
}

func TestReload(t *testing.T) {
	fake := explorertest.New()
	fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: 1, RunBeginTime: 2, RunEndTime: 5002})
	srv := explorertest.NewServer(fake)
	defer srv.Close()
	e := startExporter(t, configFor(srv.URL, "nebula"))
	configFile := strings.TrimPrefix(e.cmd.Args[1], "--config.file=")
	bucket := `nebula_explorer_job_run_duration_seconds_bucket{status="success",workflow="bfs",workflow_id="1",le="7"} 1`
	if _, body := e.get(t, "/metrics"); !strings.Contains(body, "nebula_explorer_up 1") || strings.Contains(body, bucket) {
		t.Fatalf("before reload:\n%s", body)
	}
	post := func() (int, string) {
		resp, err := http.Post("http://"+e.addr+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("POST /-/reload applies a changed file", func(t *testing.T) {
		os.WriteFile(configFile, []byte(configFor(srv.URL, "nebula")+"metrics:\n  run_duration_buckets: [7, 70]\n"), 0o600)
		if code, msg := post(); code != 200 {
			t.Fatalf("HTTP %d: %s", code, msg)
		}
		if _, body := e.get(t, "/metrics"); !strings.Contains(body, bucket) || !strings.Contains(body, "nebula_explorer_up 1") {
			t.Errorf("after reload:\n%s", body)
		}
	})
	t.Run("a broken file is refused, naming the field, and the running config stays", func(t *testing.T) {
		os.WriteFile(configFile, []byte(configFor(srv.URL, "nebula")+"  graph_port: 70000\n"), 0o600)
		code, msg := post()
		if code != http.StatusInternalServerError || !strings.Contains(msg, "graph_port") {
			t.Errorf("HTTP %d: %s", code, msg)
		}
		if _, body := e.get(t, "/metrics"); !strings.Contains(body, bucket) || !strings.Contains(body, "nebula_explorer_up 1") {
			t.Errorf("after a refused reload:\n%s", body)
		}
	})
	t.Run("a file of nested YAML merges is refused at once, and the lock is free again", func(t *testing.T) {
		bomb, err := os.ReadFile("internal/config/testdata/bad-merge-bomb-tls.yml")
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(configFile, bomb, 0o600)
		// post has no timeout of its own: a hang fails by the test's timeout.
		if code, msg := post(); code != http.StatusInternalServerError || !strings.Contains(msg, "excessive aliasing") {
			t.Errorf("HTTP %d: %s", code, msg)
		}
		if code, msg := post(); code != http.StatusInternalServerError {
			t.Errorf("a second reload: HTTP %d: %s", code, msg)
		}
	})
	t.Run("the reload metrics follow each outcome", func(t *testing.T) {
		// The last reload was refused (above).
		_, body := e.get(t, "/metrics")
		if ok := metricValue(body, "nebula_explorer_config_last_reload_successful"); ok != 0 {
			t.Errorf("after a refused reload: successful %v, want 0", ok)
		}
		os.WriteFile(configFile, []byte(configFor(srv.URL, "nebula")), 0o600)
		post()
		_, body = e.get(t, "/metrics")
		if ok := metricValue(body, "nebula_explorer_config_last_reload_successful"); ok != 1 {
			t.Errorf("after a good reload: successful %v, want 1", ok)
		}
		good := metricValue(body, "nebula_explorer_config_last_reload_success_timestamp_seconds")
		if now := float64(time.Now().Unix()); good < now-60 || good > now+1 {
			t.Errorf("success timestamp %v is not now (%v)", good, now)
		}
		os.WriteFile(configFile, []byte("explorer: [broken"), 0o600)
		post()
		_, body = e.get(t, "/metrics")
		if ok := metricValue(body, "nebula_explorer_config_last_reload_successful"); ok != 0 {
			t.Errorf("after a refused reload: successful %v, want 0", ok)
		}
		if ts := metricValue(body, "nebula_explorer_config_last_reload_success_timestamp_seconds"); ts != good {
			t.Errorf("a refused reload moved the success timestamp from %v to %v", good, ts)
		}
		os.WriteFile(configFile, []byte(configFor(srv.URL, "nebula")+"metrics:\n  run_duration_buckets: [7, 70]\n"), 0o600)
		post()
		_, body = e.get(t, "/metrics")
		if ok := metricValue(body, "nebula_explorer_config_last_reload_successful"); ok != 1 {
			t.Errorf("after a good reload: successful %v, want 1", ok)
		}
		if ts := metricValue(body, "nebula_explorer_config_last_reload_success_timestamp_seconds"); ts <= good {
			t.Errorf("a good reload left the success timestamp at %v (was %v)", ts, good)
		}
	})
	t.Run("SIGHUP reloads too", func(t *testing.T) {
		os.WriteFile(configFile, []byte(configFor(srv.URL, "nebula")), 0o600)
		e.cmd.Process.Signal(syscall.SIGHUP)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if _, body := e.get(t, "/metrics"); !strings.Contains(body, bucket) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the default buckets are not back 30 s after SIGHUP")
			}
		}
	})
	t.Run("an unchanged file keeps the collector and its synced state", func(t *testing.T) {
		e.get(t, "/metrics")
		before := fake.Stats()
		if code, msg := post(); code != 200 {
			t.Fatalf("HTTP %d: %s", code, msg)
		}
		e.get(t, "/metrics")
		if after := fake.Stats(); after.Logins != before.Logins || after.Lists != before.Lists+1 {
			t.Errorf("stats %+v -> %+v: want no login and one incremental listing", before, after)
		}
	})
	t.Run("GET /-/reload is refused", func(t *testing.T) {
		if code, _ := e.get(t, "/-/reload"); code != http.StatusMethodNotAllowed {
			t.Errorf("HTTP %d", code)
		}
	})
}

// TestHoardedConnectionsDoNotStopAScrape: clients that open connections and
// leave them idle once ran the exporter out of file descriptors, and a real
// scrape then hung for ever. Here 300 of them face an exporter allowed 128
// descriptors.
func TestHoardedConnectionsDoNotStopAScrape(t *testing.T) {
	fake := explorertest.New()
	srv := explorertest.NewServer(fake)
	defer srv.Close()
	e := startExporterWithFileLimit(t, 128, configFor(srv.URL, "nebula"))
	if !strings.Contains(e.stderr.String(), `msg="HTTP connections capped" max=64`) {
		t.Errorf("the cap is not half the file limit:\n%s", e.stderr)
	}
	var hoard []net.Conn
	defer func() {
		for _, c := range hoard {
			c.Close()
		}
	}()
	for i := range 300 {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		hoard = append(hoard, c)
		if i%2 == 0 { // every other one asks for a page and stays, keep-alive
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", e.addr)
		}
	}
	// No fixed wait: the scrape goes in line behind the hoard. The client
	// timeout only turns a hang into a failure.
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get("http://" + e.addr + "/metrics")
	if err != nil {
		t.Fatalf("the scrape failed: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "nebula_explorer_up 1") {
		t.Errorf("HTTP %d:\n%.500s", resp.StatusCode, body)
	}
}

// TestConfigReachesTheCollector: each key of the second round, changed by a
// reload, changes what the exporter serves.
func TestConfigReachesTheCollector(t *testing.T) {
	fake := explorertest.New()
	srv := explorertest.NewServer(fake)
	defer srv.Close()
	now := time.Now()
	const long = "a-workflow-name-longer-than-the-cap"
	fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: long, Status: explorer.StatusSuccess,
		CreateTime: now.Add(-time.Minute).UnixMilli(), RunBeginTime: now.Add(-50 * time.Second).UnixMilli(), RunEndTime: now.Add(-10 * time.Second).UnixMilli(),
		Tasks: []explorer.Task{{ID: "t1", Name: "PageRank", Status: explorer.StatusSuccess,
			RunBeginTime: now.Add(-50 * time.Second).Format(time.RFC3339), RunEndTime: now.Add(-45 * time.Second).Format(time.RFC3339)}}})
	fake.AddJob(explorer.Job{WorkflowID: "2", WorkflowName: "bfs", Status: explorer.StatusFailed,
		CreateTime: now.Add(-time.Minute).UnixMilli(), RunBeginTime: now.Add(-50 * time.Second).UnixMilli(), RunEndTime: now.Add(-10 * time.Second).UnixMilli()})
	base := configFor(srv.URL, "nebula")
	e := startExporter(t, base)
	configFile := strings.TrimPrefix(e.cmd.Args[1], "--config.file=")
	load := func(t *testing.T, extra string) string {
		t.Helper()
		os.WriteFile(configFile, []byte(base+extra), 0o600)
		resp, err := http.Post("http://"+e.addr+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("reload: HTTP %d: %s", resp.StatusCode, msg)
		}
		_, body := e.get(t, "/metrics")
		if !strings.Contains(body, "nebula_explorer_up 1") {
			t.Fatalf("not synced:\n%s", body)
		}
		return body
	}
	t.Run("limits.max_label_length cuts the workflow label", func(t *testing.T) {
		if body := load(t, ""); !strings.Contains(body, `workflow="`+long+`"`) {
			t.Fatalf("the name is cut by default:\n%s", body)
		}
		if body := load(t, "limits:\n  max_label_length: 16\n"); strings.Contains(body, long) || !strings.Contains(body, `workflow="a-workflow`) {
			t.Errorf("with 16 bytes:\n%s", body)
		}
	})
	t.Run("metrics.classic_histograms: false sheds the classic buckets", func(t *testing.T) {
		bucket := `nebula_explorer_job_run_duration_seconds_bucket{status="failed",workflow="bfs",workflow_id="2",le="60"} 1`
		if body := load(t, ""); !strings.Contains(body, bucket) {
			t.Fatalf("no classic bucket by default:\n%s", body)
		}
		if body := load(t, "metrics:\n  classic_histograms: false\n"); strings.Contains(body, bucket) {
			t.Errorf("a classic bucket is left:\n%s", body)
		}
	})
	t.Run("workflows.include and exclude select by the whole name", func(t *testing.T) {
		bfs := `nebula_explorer_jobs_created_total{workflow="bfs",workflow_id="2"} 1`
		other := `workflow="` + long + `"`
		if body := load(t, "workflows:\n  include: [bf]\n"); strings.Contains(body, bfs) || strings.Contains(body, other) {
			t.Errorf("include [bf] is not anchored, or lets another workflow in:\n%s", body)
		}
		if body := load(t, "workflows:\n  include: ['b.s']\n"); !strings.Contains(body, bfs) || strings.Contains(body, other) {
			t.Errorf("include [b.s]:\n%s", body)
		}
		if body := load(t, "workflows:\n  exclude: [bfs]\n"); strings.Contains(body, bfs) || !strings.Contains(body, other) {
			t.Errorf("exclude [bfs]:\n%s", body)
		}
	})
	t.Run("limits.max_workflows sends the others to the overflow series", func(t *testing.T) {
		body := load(t, "limits:\n  max_workflows: 1\n")
		if !strings.Contains(body, `workflow="__overflow__"`) {
			t.Errorf("no overflow series with 2 workflows and a cap of 1:\n%s", body)
		}
	})
	t.Run("tasks: task_duration_buckets, and enabled: false", func(t *testing.T) {
		bucket := `nebula_explorer_task_run_duration_seconds_bucket{status="success",task="PageRank",workflow="` + long + `",workflow_id="1",le="7"} 1`
		if body := load(t, "metrics:\n  task_duration_buckets: [7, 70]\n"); !strings.Contains(body, bucket) {
			t.Errorf("no task bucket of 7 s:\n%s", body)
		}
		if body := load(t, "tasks:\n  enabled: false\n"); strings.Contains(body, "nebula_explorer_task_run_duration_seconds") {
			t.Errorf("task metrics while disabled:\n%s", body)
		}
	})
}

// fakeConn is a connection that only records that it was closed.
type fakeConn struct {
	net.Conn
	closed bool
}

func (c *fakeConn) Close() error { c.closed = true; return nil }

func TestConnLimitShedsTheLongestWaiting(t *testing.T) {
	l := &connLimit{max: 3, conns: map[net.Conn]connState{}}
	a, b, c, d, e := &fakeConn{}, &fakeConn{}, &fakeConn{}, &fakeConn{}, &fakeConn{}
	for _, conn := range []*fakeConn{a, b, c} {
		l.track(conn, http.StateNew)
	}
	l.track(a, http.StateActive) // a is busy: never shed
	l.track(b, http.StateActive)
	l.track(b, http.StateIdle) // b now waits since after c opened
	l.track(d, http.StateNew)
	if a.closed || b.closed || !c.closed || d.closed {
		t.Fatalf("want c (silent longest) closed: a %v b %v c %v d %v", a.closed, b.closed, c.closed, d.closed)
	}
	l.track(c, http.StateClosed) // the server's word after the Close: no change
	l.track(e, http.StateNew)
	if !b.closed || d.closed || e.closed {
		t.Fatalf("want b (idle longest) closed: b %v d %v e %v", b.closed, d.closed, e.closed)
	}
	l.track(d, http.StateActive)
	l.track(e, http.StateActive)
	f := &fakeConn{}
	l.track(f, http.StateNew)
	if !f.closed || len(l.conns) != 3 {
		t.Errorf("every other one busy: want the new one closed, %d open", len(l.conns))
	}
}
