package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
				simAddr := freeAddr(b)
				sim := exec.Command(simulator, "--web.listen-address="+simAddr, fmt.Sprintf("--jobs=%d", jobs),
					"--workflows=200", "--tick=1s")
				if err := sim.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() { sim.Process.Kill(); sim.Wait() }()
				waitListening(b, simAddr, time.Minute)

				addr := freeAddr(b)
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

func waitListening(b *testing.B, addr string, within time.Duration) {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	b.Fatalf("nothing listens on %s", addr)
}

func scrape(b *testing.B, addr string) string {
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

func procStatusKB(b *testing.B, pid int, field string) int {
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
