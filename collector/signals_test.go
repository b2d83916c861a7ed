package collector

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

// TestLastJobAndOldestUnfinished: the latest job of each workflow (ties to
// the greater id, a job without runEndTime at its createTime) and the oldest
// unfinished job in each non-terminal status, then the same after a full
// resync that finds the latest job deleted.
func TestLastJobAndOldestUnfinished(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.FullResyncInterval = time.Nanosecond }) // every sync is a full one
	add := func(workflow, id string, status int, create, begin, end int64) explorer.Job {
		return e.fake.AddJob(explorer.Job{WorkflowID: id, WorkflowName: workflow, Status: status,
			CreateTime: t0 + create, RunBeginTime: begin, RunEndTime: end})
	}
	// bfs: the latest is the interrupted job that never ran: created when the
	// failed one ended, with a greater id, and without a run time.
	add("bfs", "1", explorer.StatusSuccess, 0, t0+1000, t0+10_000)
	add("bfs", "1", explorer.StatusFailed, 1000, t0+2000, t0+20_000)
	interrupted := add("bfs", "1", explorer.StatusInterrupted, 20_000, 0, 0)
	// pr: nothing finished yet, jobs waiting in every non-terminal status.
	add("pr", "2", explorer.StatusPreparing, 5000, 0, 0)
	add("pr", "2", explorer.StatusPreparing, 1000, 0, 0)
	add("pr", "2", explorer.StatusRunning, 3000, t0+4000, 0)
	add("pr", "2", explorer.StatusStopping, 4000, t0+4500, 0)
	add("pr", "2", 9, 6000, 0, 0)
	// wcc: two successes; the later one ran 2.5 s.
	add("wcc", "3", explorer.StatusSuccess, 0, t0+100, t0+30_000)
	add("wcc", "3", explorer.StatusSuccess, 100, t0+40_000, t0+42_500)

	e.mustSync(t)
	assertGolden(t, "last_job.prom", []byte(jobMetrics(t, e.col)))

	e.fake.DeleteJob(interrupted.ID)
	e.mustSync(t)
	assertGolden(t, "last_job_after_delete.prom", []byte(jobMetrics(t, e.col)))
}

// TestTelemetryCountsSyncs: syncs_total counts each sync once by kind and
// result, api_requests_total each request by endpoint and result, across
// collectors sharing one Telemetry (as across reloads).
func TestTelemetryCountsSyncs(t *testing.T) {
	telemetry := NewTelemetry()
	e := newTestEnv(t, func(o *Options) { o.Telemetry = telemetry }, withTasks(2))
	addHistory(e.fake, 4, t0)
	e.mustSync(t) // full
	e.mustSync(t) // incremental
	e.fake.SetQuirks(explorertest.Quirks{HTTPStatus: 500})
	e.sync(t) // incremental, failed
	e.fake.SetQuirks(explorertest.Quirks{})
	e.col = e.newCollector(t) // a reload: a new collector, the same telemetry
	e.mustSync(t)             // full
	var b bytes.Buffer
	families, err := gatherOnly(telemetry, "nebula_explorer_syncs_total", "nebula_explorer_api_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		expfmt.MetricFamilyToText(&b, f)
	}
	assertGolden(t, "telemetry_syncs.prom", b.Bytes())
}

// gatherOnly gathers c and keeps the named families.
func gatherOnly(c prometheus.Collector, names ...string) ([]*dto.MetricFamily, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	all, err := reg.Gather()
	var out []*dto.MetricFamily
	for _, f := range all {
		if slices.Contains(names, f.GetName()) {
			out = append(out, f)
		}
	}
	return out, err
}

// TestExemplars: an OpenMetrics scrape carries on each bucket line of the
// run and queue histograms the latest job observed into it (by runEndTime,
// resp. runBeginTime; ties to the greater id), with its duration and time.
func TestExemplars(t *testing.T) {
	e := newTestEnv(t)
	add := func(status int, create, queueMs, runMs int64) {
		e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: status,
			CreateTime: t0 + create, RunBeginTime: t0 + create + queueMs, RunEndTime: t0 + create + queueMs + runMs})
	}
	add(explorer.StatusSuccess, 0, 500, 5000)         // job 1: run bucket 10, queue bucket 1
	add(explorer.StatusSuccess, 1000, 500, 4000)      // job 2: ends at the same time as job 1 (tie: 2 wins), queue bucket 1 later
	add(explorer.StatusSuccess, 100, 20_000, 500_000) // job 3: +Inf for both
	add(explorer.StatusFailed, 200, 0, 0)             // job 4: 0 s queue and run
	e.mustSync(t)

	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	r.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;q=0.5")
	w := httptest.NewRecorder()
	e.col.ServeHTTP(w, r)
	body := w.Body.String()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text; version=1.0.0") || !strings.HasSuffix(body, "# EOF\n") {
		t.Fatalf("Content-Type %q, body ends %q", ct, body[max(0, len(body)-20):])
	}
	var histograms bytes.Buffer
	for _, line := range strings.SplitAfter(body, "\n") {
		if strings.Contains(line, "explorer_job_run_duration_seconds") || strings.Contains(line, "explorer_job_queue_duration_seconds") {
			histograms.WriteString(line)
		}
	}
	assertGolden(t, "exemplars.prom", histograms.Bytes())
}

// TestDropClassicBuckets: with classic_histograms off, the duration
// histograms keep only +Inf, _sum and _count in text, and only their native
// buckets in protobuf.
func TestDropClassicBuckets(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.DropClassicBuckets = true }, withTasks(10))
	e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess,
		CreateTime: t0, RunBeginTime: t0 + 1500, RunEndTime: t0 + 4500})
	e.mustSync(t)
	var histograms bytes.Buffer
	for _, line := range strings.SplitAfter(jobMetrics(t, e.col), "\n") {
		if strings.Contains(line, "_duration_seconds_") {
			histograms.WriteString(line)
		}
	}
	assertGolden(t, "drop_classic.prom", histograms.Bytes())
	families, err := e.col.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.Metric {
			if h := m.Histogram; h != nil && !strings.Contains(f.GetName(), "api_request") && (len(h.Bucket) > 0 || len(h.PositiveSpan) == 0) {
				t.Errorf("%s: %d classic buckets, %d native spans", f.GetName(), len(h.Bucket), len(h.PositiveSpan))
			}
		}
	}
}

// TestWorkflowFilter: jobs of excluded workflows count nowhere (no series,
// no task fetches) and cost no memory; the listings still move on past them.
func TestWorkflowFilter(t *testing.T) {
	e := newTestEnv(t, withTasks(100), func(o *Options) {
		o.Workflows = WorkflowFilter{Include: []*regexp.Regexp{regexp.MustCompile(`^(?:bfs|pr_.*)$`)},
			Exclude: []*regexp.Regexp{regexp.MustCompile(`^(?:pr_test)$`)}}
	})
	for i, name := range []string{"bfs", "bfs_v2", "pr_daily", "pr_test", "wcc"} {
		for k, status := range []int{explorer.StatusSuccess, explorer.StatusRunning} {
			create := t0 + int64(i*10+k)*1000
			e.fake.AddJob(explorer.Job{WorkflowID: fmt.Sprint(i), WorkflowName: name, Status: status, CreateTime: create, RunBeginTime: create + 10, RunEndTime: create + 5000*int64(1-k)})
		}
	}
	e.mustSync(t)
	details := e.fake.Stats().Details
	e.mustSync(t)
	s := e.col.state
	if len(s.workflows) != 2 || len(s.unfinished) != 2 || len(s.tasks.series) != 2 || details != 2 {
		t.Errorf("kept %d workflows, %d unfinished jobs, tasks of %d workflows, fetched %d details; want 2 of each",
			len(s.workflows), len(s.unfinished), len(s.tasks.series), details)
	}
	if s.newest != t0+41_000 {
		t.Errorf("listings start from %d, want past the newest excluded job %d", s.newest, t0+41_000)
	}
	var kept bytes.Buffer
	for _, line := range strings.SplitAfter(jobMetrics(t, e.col), "\n") {
		if strings.Contains(line, "_jobs{") || strings.Contains(line, "nebula_explorer_workflows ") {
			kept.WriteString(line)
		}
	}
	assertGolden(t, "filter.prom", kept.Bytes())
}

// TestStreamedText: the text written in chunks (to gzip) is the buffered
// text, byte for byte, for a state of many chunks.
func TestStreamedText(t *testing.T) {
	s := newState([]float64{1, 10, 100}, []float64{1, 10})
	s.tasks = newTaskState([]float64{1, 10})
	for id := int64(1); id <= 600; id++ {
		j := explorer.Job{ID: id, WorkflowID: fmt.Sprint(id % 300), WorkflowName: fmt.Sprintf("w%d", id%300), Status: int(id % 6),
			CreateTime: t0 + id, RunBeginTime: t0 + id + 10, RunEndTime: t0 + id + 5000,
			Tasks: []explorer.Task{{Name: "BFS", Status: explorer.StatusSuccess}}}
		s.observe(j)
	}
	var streamed bytes.Buffer
	if err := writeText(context.Background(), &streamed, s, false); err != nil {
		t.Fatal(err)
	}
	buffered := mustText(t, s)
	if len(buffered) < 3*textChunk || !bytes.Equal(streamed.Bytes(), buffered) {
		t.Errorf("streamed %d bytes, buffered %d (want equal, over 3 chunks)", streamed.Len(), len(buffered))
	}
}

// TestOpenMetricsEqualsExpfmt holds the direct OpenMetrics writer to the
// reference, expfmt's OpenMetrics encoding of the rendered families (with
// their exemplars), byte for byte, over random states with tasks, awkward
// names, every kind of status, and with and without classic buckets.
func TestOpenMetricsEqualsExpfmt(t *testing.T) {
	names := []string{"bfs", `pr "daily"`, "a\\b", "new\nline", "社区发现", "", "z"}
	for seed := int64(0); seed < 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		s := newState([]float64{0.5, 1, 10, 3600}, []float64{1, 60})
		s.tasks, s.dropClassic = newTaskState([]float64{1, 100}), seed%4 == 3
		for id := int64(1); id <= int64(rng.Intn(60)); id++ {
			w := rng.Intn(len(names))
			begin, end := int64(0), int64(0)
			if rng.Intn(4) > 0 {
				begin = t0 + id*1000 + int64(rng.Intn(100_000))
			}
			if rng.Intn(3) > 0 {
				end = begin + int64(rng.Intn(10_000_000)) - 1000
			}
			s.observe(explorer.Job{ID: id, WorkflowID: fmt.Sprint(w * 7), WorkflowName: names[w], Status: rng.Intn(8) - 1,
				CreateTime: t0 + id*1000, RunBeginTime: begin, RunEndTime: end,
				Tasks: []explorer.Task{{Name: names[rng.Intn(len(names))], Status: 2 + rng.Intn(3), RunBeginTime: "2024-01-01T10:00:00Z", RunEndTime: "2024-01-01T10:00:07Z"}}})
		}
		var want bytes.Buffer
		families, err := render(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if _, err := expfmt.MetricFamilyToOpenMetrics(&want, f); err != nil {
				t.Fatal(err)
			}
		}
		var got bytes.Buffer
		if err := writeText(context.Background(), &got, s, true); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("seed %d: OpenMetrics differs from expfmt's:\n%s", seed, lineDiff(want.String(), got.String()))
		}
	}
}
