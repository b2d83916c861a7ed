package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

// BenchmarkExporterMemory runs the exporter binary against the simulator
// binary (separate processes, so the fake's own memory is not counted), with
// 200 workflows and a long history, and reports the exporter's peak RSS
// (VmHWM) and its Go heap after a cold sync and a few steady scrapes.
func BenchmarkExporterMemory(b *testing.B) {
	simulator := filepath.Join(filepath.Dir(binary), "simulator")
	if out, err := exec.Command("go", "build", "-o", simulator, "./deploy/simulator").CombinedOutput(); err != nil {
		b.Fatalf("go build simulator: %v\n%s", err, out)
	}
	for _, jobs := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("history=%d", jobs), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				simAddr := localtest.FreeAddr(b)
				sim := exec.Command(simulator, "--web.listen-address="+simAddr, fmt.Sprintf("--jobs=%d", jobs),
					"--workflows=200", "--tick=1s")
				if err := sim.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() { sim.Process.Kill(); sim.Wait() }()
				waitListening(b, simAddr, time.Minute)

				addr := localtest.FreeAddr(b)
				cfg := filepath.Join(b.TempDir(), "config.yml")
				os.WriteFile(cfg, []byte(configFor("http://"+simAddr, "nebula")), 0o600)
				exp := exec.Command(binary, "--config.file="+cfg, "--web.listen-address="+addr)
				if err := exp.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() { exp.Process.Kill(); exp.Wait() }()
				waitListening(b, addr, 10*time.Second)

				start := time.Now()
				body := scrape(b, addr)
				cold := time.Since(start)
				if !strings.Contains(body, "nebula_explorer_up 1") {
					b.Fatalf("cold sync failed:\n%s", grep(body, "nebula_explorer_up"))
				}
				var requests float64
				for s := 0; s < 5; s++ {
					time.Sleep(1100 * time.Millisecond) // a simulator tick: new and changed jobs
					body = scrape(b, addr)
					requests += metricValue(body, "nebula_explorer_sync_api_requests")
				}
				b.ReportMetric(cold.Seconds(), "cold-sync-s")
				b.ReportMetric(requests/5, "steady-requests")
				b.ReportMetric(metricValue(body, "nebula_explorer_sync_duration_seconds")*1000, "steady-sync-ms")
				b.ReportMetric(float64(procStatusKB(b, exp.Process.Pid, "VmHWM"))/1024, "peak-RSS-MiB")
				b.ReportMetric(metricValue(body, "go_memstats_heap_inuse_bytes")/(1<<20), "heap-inuse-MiB")
				b.ReportMetric(metricValue(body, "go_memstats_heap_sys_bytes")/(1<<20), "heap-sys-MiB")
			}
		})
	}
}

func waitListening(b testing.TB, addr string, within time.Duration) {
	b.Helper()
	if err := localtest.WaitListening(addr, within); err != nil {
		b.Fatal(err)
	}
}

func scrape(b testing.TB, addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("scrape: HTTP %d, %v", resp.StatusCode, err)
	}
	return string(out)
}

func grep(text, prefix string) string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func metricValue(text, name string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

func procStatusKB(b testing.TB, pid int, field string) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// abuseRSSBoundMiB is the peak RSS BenchmarkExporterMemoryUnderAbuse allows
// the exporter: under the 64Mi limit of deploy/kubernetes/deployment.yaml.
// The exporter runs with that manifest's GOMEMLIMIT.
const (
	abuseRSSBoundMiB     = 56
	deploymentGOMEMLIMIT = "48MiB"
)

// BenchmarkExporterMemoryUnderAbuse runs the exporter binary (its own
// process, so only its memory counts) against a fake Explorer with 1,000
// (then 10,000) workflows, scrapes it with 40 different Accept headers, alternately
// gzipped, then lets Explorer answer a listing with a 60 MB page. It reports
// the exporter's peak RSS (VmHWM) and fails above abuseRSSBoundMiB.
func BenchmarkExporterMemoryUnderAbuse(b *testing.B) {
	for _, workflows := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("workflows=%d", workflows), func(b *testing.B) { exporterUnderAbuse(b, workflows) })
	}
}

// exporterUnderAbuse checks abuseRSSBoundMiB at 1,000 workflows, and only
// reports the peak beyond (README: memory grows with the workflows).
func exporterUnderAbuse(b *testing.B, workflows int) {
	for i := 0; i < b.N; i++ {
		fake := explorertest.New()
		fake.AddJobs(explorertest.Workload{Workflows: workflows, Seed: 1}.History(20 * workflows))
		var huge atomic.Bool
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if huge.Load() && r.URL.Path == explorer.JobsPath {
				writeHugePage(w, 60<<20)
				return
			}
			fake.ServeHTTP(w, r)
		}))
		defer srv.Close()

		addr := localtest.FreeAddr(b)
		cfg := filepath.Join(b.TempDir(), "config.yml")
		os.WriteFile(cfg, []byte(configFor(srv.URL, "nebula")), 0o600)
		exp := exec.Command(binary, "--config.file="+cfg, "--web.listen-address="+addr)
		exp.Env = append(os.Environ(), "GOMEMLIMIT="+deploymentGOMEMLIMIT)
		if err := exp.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { exp.Process.Kill(); exp.Wait() }()
		waitListening(b, addr, 10*time.Second)

		if body := scrape(b, addr); !strings.Contains(body, "nebula_explorer_up 1") {
			b.Fatalf("cold sync failed:\n%s", grep(body, "nebula_explorer_up"))
		}
		afterSync := procStatusKB(b, exp.Process.Pid, "VmHWM")
		accepts := acceptVariants()
		for n, accept := range accepts {
			scrapeAs(b, addr, accept, n%2 == 0)
		}
		afterAccepts := procStatusKB(b, exp.Process.Pid, "VmHWM")
		huge.Store(true)
		if body := scrape(b, addr); !strings.Contains(body, "nebula_explorer_up 0") {
			b.Errorf("a 60 MB page did not fail the sync:\n%s", grep(body, "nebula_explorer_up"))
		}
		peak := float64(procStatusKB(b, exp.Process.Pid, "VmHWM")) / 1024
		b.Logf("peak RSS: %.1f MiB after the first sync, %.1f MiB after %d Accept variants, %.1f MiB after a 60 MB page",
			float64(afterSync)/1024, float64(afterAccepts)/1024, len(accepts), peak)
		b.ReportMetric(float64(afterSync)/1024, "peak-RSS-after-sync-MiB")
		b.ReportMetric(float64(afterAccepts)/1024, "peak-RSS-after-accepts-MiB")
		b.ReportMetric(peak, "peak-RSS-MiB")
		if workflows <= 1000 && peak > abuseRSSBoundMiB {
			b.Errorf("peak RSS %.1f MiB, above the bound of %d MiB", peak, abuseRSSBoundMiB)
		}
	}
}

// acceptVariants are 40 different Accept headers: formats, versions and
// escaping schemes a client may ask for.
func acceptVariants() []string {
	const proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding="
	var out []string
	for _, format := range []string{"text/plain;version=0.0.4", "text/plain;version=1.0.0", proto + "delimited", proto + "text",
		proto + "compact-text", "application/openmetrics-text;version=1.0.0", "application/openmetrics-text;version=0.0.1",
		"application/openmetrics-text;version=2.0.0"} {
		for _, escaping := range []string{"", ";escaping=underscores", ";escaping=dots", ";escaping=values", ";escaping=allow-utf-8"} {
			out = append(out, format+escaping+";q=0.9,*/*;q=0.1")
		}
	}
	return out
}

func scrapeAs(b testing.TB, addr, accept string, gz bool) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	req.Header.Set("Accept", accept)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := http.DefaultTransport.RoundTrip(req) // the body as sent, gzipped or not
	if err != nil {
		b.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
		b.Fatalf("scrape with Accept %q: HTTP %d, %v", accept, resp.StatusCode, err)
	}
}

// writeHugePage answers a listing with a page of about size bytes of
// well-formed jobs, as a broken or hostile Explorer might.
func writeHugePage(w http.ResponseWriter, size int) {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 1<<16)
	defer bw.Flush()
	name := strings.Repeat("w", 500)
	bw.WriteString(`{"code":0,"message":"Success","data":{"items":[`)
	now := time.Now().UnixMilli()
	n := 0
	for written := 0; written < size; n++ {
		if n > 0 {
			bw.WriteByte(',')
		}
		k, err := fmt.Fprintf(bw, `{"id":%d,"name":"job","workflowId":"%d","workflowName":"%s_%d","status":2,"createTime":%d,"runBeginTime":%d,"runEndTime":%d}`,
			10_000_000+n, n, name, n, now, now, now+1000)
		if err != nil {
			return // the exporter stopped reading
		}
		written += k
	}
	fmt.Fprintf(bw, `],"total":%d,"Page":1,"PageSize":%d}}`, n, n)
}
