package collector

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/localtest"
)

// TestMetricsPage is the whole /metrics page of a fixed workload (the job
// metrics, task metrics and the sync's health; the Go and process metrics of
// Options.Extra aside), held to testdata/metrics.prom and linted by
// `promtool check metrics`, as node_exporter's end-to-end test does.
func TestMetricsPage(t *testing.T) {
	e := newTestEnv(t, withTasks(1000))
	now := time.UnixMilli(t0)
	e.fake.SetNow(func() time.Time { return now })
	e.fake.SetQuirks(explorertest.Quirks{TasksInListing: true})
	e.fake.AddJobs(explorertest.Workload{Workflows: 4, Seed: 7, Now: now}.History(200))
	e.mustSync(t)
	e.col.mu.Lock() // the sync's timing varies from run to run: fix it
	e.col.health.duration, e.col.health.requests, e.col.health.lastSuccess = 1500*time.Millisecond, 70, now
	e.col.mu.Unlock()

	w := httptest.NewRecorder()
	e.col.serve(context.Background(), w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", w.Code, w.Body)
	}
	page := w.Body.Bytes()
	assertGolden(t, "metrics.prom", page)

	cmd := exec.Command(localtest.NeedTool(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
