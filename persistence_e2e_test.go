package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

const createdBfs = `nebula_explorer_jobs_created_total{workflow="bfs",workflow_id="1"}`

func addFinishedJobs(fake *explorertest.Explorer, n int, from int64) {
	for i := range n {
		ct := from + int64(i)*1000
		fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: ct,
			RunBeginTime: ct + 100, RunEndTime: ct + 5000})
	}
}

// TestPersistenceFile: with --persistence.file, SIGTERM writes the state; a
// restart loads it, syncs incrementally (a few requests) and keeps the
// counters although Explorer deleted half the jobs meanwhile; a corrupt file
// is refused with a warning and set aside, and the exporter still serves.
func TestPersistenceFile(t *testing.T) {
	fake := explorertest.New()
	addFinishedJobs(fake, 40, 1_700_000_000_000)
	srv := explorertest.NewServer(fake)
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "state")
	config := configFor(srv.URL, "nebula")

	e := startExporter(t, config, "--persistence.file="+file)
	_, body := e.get(t, "/metrics")
	if !strings.Contains(body, "nebula_explorer_up 1") || metricValue(body, createdBfs) != 40 {
		t.Fatalf("first start:\n%s", body)
	}
	if v := metricValue(body, "nebula_explorer_persistence_last_write_success"); v != 1 {
		t.Errorf("persistence_last_write_success %v, want 1", v)
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	if err := e.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, e.stderr)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("no state file after SIGTERM: %v", err)
	}

	for i, j := range fake.Jobs() {
		if i%2 == 0 {
			fake.DeleteJob(j.ID)
		}
	}
	addFinishedJobs(fake, 2, 1_700_000_100_000)
	fake.ResetStats()
	e = startExporter(t, config, "--persistence.file="+file)
	_, body = e.get(t, "/metrics")
	if !strings.Contains(body, "nebula_explorer_up 1") || metricValue(body, createdBfs) != 42 {
		t.Errorf("after a restart and the deletion of 20 jobs, want up 1 and 42 jobs created:\n%s", body)
	}
	if n := fake.Stats().Requests; n > 5 {
		t.Errorf("the first scrape after the restart made %d requests", n)
	}
	if !strings.Contains(e.stderr.String(), "state loaded") {
		t.Errorf("the log does not say the state was loaded:\n%s", e.stderr)
	}
	e.cmd.Process.Kill()
	e.cmd.Wait()

	os.WriteFile(file, []byte("garbage"), 0o600)
	e = startExporter(t, config, "--persistence.file="+file)
	if _, body = e.get(t, "/metrics"); !strings.Contains(body, "nebula_explorer_up 1") {
		t.Errorf("with a corrupt state file:\n%s", body)
	}
	if log := e.stderr.String(); !strings.Contains(log, "state file refused") || !strings.Contains(log, "no magic bytes") {
		t.Errorf("no warning naming the reason:\n%s", log)
	}
	if _, err := os.Stat(file + ".bad"); err != nil {
		t.Errorf("the corrupt file was not set aside: %v", err)
	}
}

// TestReloadKeepsCounters: without a state file, a reload that builds a new
// collector keeps the counters although Explorer deleted jobs meanwhile.
func TestReloadKeepsCounters(t *testing.T) {
	fake := explorertest.New()
	addFinishedJobs(fake, 10, 1_700_000_000_000)
	srv := explorertest.NewServer(fake)
	defer srv.Close()
	e := startExporter(t, configFor(srv.URL, "nebula"))
	configFile := strings.TrimPrefix(e.cmd.Args[1], "--config.file=")
	if _, body := e.get(t, "/metrics"); metricValue(body, createdBfs) != 10 {
		t.Fatalf("before:\n%s", body)
	}
	for _, j := range fake.Jobs()[:6] {
		fake.DeleteJob(j.ID)
	}
	os.WriteFile(configFile, []byte(configFor(srv.URL, "nebula")+"sync:\n  concurrency: 2\n"), 0o600)
	resp, err := http.Post("http://"+e.addr+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reload: HTTP %d", resp.StatusCode)
	}
	_, body := e.get(t, "/metrics")
	if !strings.Contains(body, "nebula_explorer_up 1") || metricValue(body, createdBfs) != 10 {
		t.Errorf("after the reload, want up 1 and still 10 jobs created:\n%s", body)
	}
	if v := metricValue(body, `nebula_explorer_jobs{status="success",workflow="bfs",workflow_id="1"}`); v != 4 {
		t.Errorf("the jobs gauge is %v after the reload, want the 4 Explorer lists", v)
	}
}
