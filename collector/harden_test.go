package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

// scrapeValue is the value of one sample of the collector's full exposition
// (health included), and whether it is there.
func scrapeValue(t *testing.T, c *Collector, series string) (float64, bool) {
	t.Helper()
	v, ok := samples(t, gatherText(t, c))[series]
	return v, ok
}

// TestFutureCreateTimeDoesNotHideNewJobs: one job created "in the future"
// (clock skew, a bogus year 9999) must not move the incremental listings
// past the jobs Explorer creates now, even without full resyncs; the skew is
// logged once and measured.
func TestFutureCreateTimeDoesNotHideNewJobs(t *testing.T) {
	e := newTestEnv(t)    // FullResyncInterval 0: no full resync ever heals it
	var logs bytes.Buffer // this collector's alone, not the fresh ones'
	e.col.logger = log.NewLogfmtLogger(&logs)
	now := t0 + time.Hour.Milliseconds()
	e.col.now = func() time.Time { return time.UnixMilli(now) }
	addHistory(e.fake, 3, t0)
	const year9999 = int64(253402300799000)
	e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess,
		CreateTime: year9999, RunBeginTime: year9999, RunEndTime: year9999 + 1000})
	e.mustSync(t)

	for step := 0; step < 3; step++ {
		now += 10 * time.Minute.Milliseconds()
		for i := int64(0); i < 10; i++ {
			e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusFailed,
				CreateTime: now - i*1000, RunBeginTime: now, RunEndTime: now + 5000})
		}
		e.mustSync(t)
		if got, want := jobMetrics(t, e.col), e.fresh(t); got != want {
			t.Fatalf("step %d: new jobs hidden by a job created in year 9999:\n%s", step, diffSamples(t, got, want))
		}
	}
	if v, _ := scrapeValue(t, e.col, "nebula_explorer_job_create_time_ahead_seconds"); v != float64(year9999-now)/1000 {
		t.Errorf("job_create_time_ahead_seconds = %g, want %g", v, float64(year9999-now)/1000)
	}
	if n := strings.Count(logs.String(), "created after the exporter's current time"); n != 1 {
		t.Errorf("the skew is logged %d times, want once:\n%s", n, &logs)
	}
}

// TestFutureJobWithExplorerClockBehind: Explorer's clock runs 10 minutes
// behind the exporter's (more than sync.overlap) and one job claims year
// 9999: new jobs still show within one sync.
func TestFutureJobWithExplorerClockBehind(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.Overlap, o.Lookback = time.Minute, time.Hour })
	now := t0 + time.Hour.Milliseconds()
	e.col.now = func() time.Time { return time.UnixMilli(now) }
	lag := 10 * time.Minute.Milliseconds()
	addHistory(e.fake, 3, now-lag-10_000)
	const year9999 = int64(253402300799000)
	e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: year9999})
	e.mustSync(t)
	for step := 0; step < 3; step++ {
		now += 30_000
		e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusFailed, CreateTime: now - lag})
		e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusRunning, CreateTime: now - lag, RunBeginTime: now - lag})
		e.mustSync(t)
		if got, want := jobMetrics(t, e.col), e.fresh(t); got != want {
			t.Fatalf("step %d: new jobs of a lagging Explorer hidden by a job created in year 9999:\n%s", step, diffSamples(t, got, want))
		}
	}
}

func TestJobCreateTimeAheadIsZeroWithoutSkew(t *testing.T) {
	e := newTestEnv(t)
	addHistory(e.fake, 3, t0)
	e.mustSync(t)
	if v, ok := scrapeValue(t, e.col, "nebula_explorer_job_create_time_ahead_seconds"); !ok || v != 0 {
		t.Errorf("job_create_time_ahead_seconds = %g (present %v), want 0", v, ok)
	}
	if strings.Contains(e.logs.String(), "created after") {
		t.Errorf("skew logged without skew:\n%s", e.logs)
	}
}

// TestBogusTimesAreCountedAndNeverWrap: jobs with negative or absurd times
// are counted like any other, and no sum or duration wraps around.
func TestBogusTimesAreCountedAndNeverWrap(t *testing.T) {
	e := newTestEnv(t)
	jobs := []explorer.Job{
		{Status: explorer.StatusSuccess, CreateTime: -5000, RunBeginTime: 1, RunEndTime: 9e18},
		{Status: explorer.StatusSuccess, CreateTime: -4000, RunBeginTime: 1, RunEndTime: 9e18},
		{Status: explorer.StatusFailed, CreateTime: math.MinInt64 + 1, RunBeginTime: math.MaxInt64 - 1, RunEndTime: math.MaxInt64},
		{Status: explorer.StatusRunning, CreateTime: t0, RunBeginTime: t0 + 1000},
	}
	for _, j := range jobs {
		j.WorkflowID, j.WorkflowName = "1", "bfs"
		e.fake.AddJob(j)
	}
	e.mustSync(t)
	got := samples(t, jobMetrics(t, e.col))
	for series, want := range map[string]float64{
		`nebula_explorer_jobs_created_total{workflow="bfs",workflow_id="1"}`:                              4,
		`nebula_explorer_jobs_finished_total{status="success",workflow="bfs",workflow_id="1"}`:            2,
		`nebula_explorer_jobs_finished_total{status="failed",workflow="bfs",workflow_id="1"}`:             1,
		`nebula_explorer_job_run_duration_seconds_count{status="success",workflow="bfs",workflow_id="1"}`: 2,
		`nebula_explorer_job_run_duration_seconds_sum{status="success",workflow="bfs",workflow_id="1"}`:   float64(math.MaxInt64) / 1000,
		`nebula_explorer_job_queue_duration_seconds_count{workflow="bfs",workflow_id="1"}`:                4,
		`nebula_explorer_job_queue_duration_seconds_sum{workflow="bfs",workflow_id="1"}`:                  float64(math.MaxInt64) / 1000,
	} {
		if got[series] != want {
			t.Errorf("%s = %g, want %g", series, got[series], want)
		}
	}
	for series, v := range got {
		if v < 0 {
			t.Errorf("%s = %g: wrapped negative", series, v)
		}
	}
}

// gatherText is what a scrape serves now (without syncing), as text.
func gatherText(t *testing.T, c *Collector) string {
	t.Helper()
	w := httptest.NewRecorder()
	c.serve(context.Background(), w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", w.Code, w.Body)
	}
	return w.Body.String()
}

// TestCacheKeepsAFixedNumberOfEncodings: whatever Accept headers clients
// send (formats, versions, escaping schemes, with and without gzip), the
// cache holds at most one copy per cached encoding, and every answer decodes
// in the format it announces.
func TestCacheKeepsAFixedNumberOfEncodings(t *testing.T) {
	e := newTestEnv(t)
	for w := range 20 {
		e.fake.AddJob(explorer.Job{WorkflowID: fmt.Sprint(w), WorkflowName: fmt.Sprintf("workflow.%d", w),
			Status: explorer.StatusSuccess, CreateTime: t0 + int64(w), RunBeginTime: t0 + 1000, RunEndTime: t0 + 9000})
	}
	e.mustSync(t)
	const proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding="
	formats := []string{"text/plain;version=0.0.4", "text/plain;version=1.0.0", "text/plain", proto + "delimited",
		proto + "text", proto + "compact-text", "application/openmetrics-text;version=1.0.0",
		"application/openmetrics-text;version=0.0.1", "application/openmetrics-text;version=2.0.0"}
	escapings := []string{"", ";escaping=underscores", ";escaping=dots", ";escaping=values", ";escaping=allow-utf-8"}
	scrape := func(accept string, gz bool) {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		r.Header.Set("Accept", accept)
		if gz {
			r.Header.Set("Accept-Encoding", "gzip")
		}
		w := httptest.NewRecorder()
		e.col.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("Accept %q: HTTP %d", accept, w.Code)
		}
		body := io.Reader(w.Body)
		if gz {
			zr, err := gzip.NewReader(body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		format := expfmt.ResponseFormat(w.Result().Header)
		if format.FormatType() != expfmt.TypeTextPlain && format.FormatType() != expfmt.TypeProtoDelim {
			return // expfmt decodes only these two
		}
		dec, found := expfmt.NewDecoder(body, format), false
		for {
			var f dto.MetricFamily
			if err := dec.Decode(&f); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("Accept %q (gzip %v): answer in %q does not decode: %v", accept, gz, format, err)
			}
			found = found || f.GetName() == "nebula_explorer_jobs_created_total"
		}
		if !found {
			t.Errorf("Accept %q (gzip %v): no job metrics in the answer", accept, gz)
		}
	}
	for _, gz := range []bool{false, true} {
		for _, accept := range []string{"text/plain;version=0.0.4", proto + "delimited", "application/openmetrics-text;version=1.0.0"} {
			scrape(accept, gz)
		}
	}
	bound := e.col.jobs.cachedBytes()
	variants := 0
	for _, f := range formats {
		for _, esc := range escapings {
			variants++
			scrape(f+esc+";q=0.9,*/*;q=0.1", variants%2 == 0)
		}
	}
	if variants < 40 {
		t.Fatalf("only %d Accept variants", variants)
	}
	if got := e.col.jobs.cachedBytes(); got > bound {
		t.Errorf("after %d Accept variants the cache holds %d bytes, more than the %d of the cached encodings", variants, got, bound)
	}
}

// TestRenderingStopsAtTheDeadline: encoding stops when the scrape's deadline
// has passed, caches nothing, and the scrape fails rather than hang on.
func TestRenderingStopsAtTheDeadline(t *testing.T) {
	e := newTestEnv(t)
	addHistory(e.fake, 5, t0)
	e.mustSync(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, format := range []expfmt.Format{expfmt.NewFormat(expfmt.TypeTextPlain), expfmt.NewFormat(expfmt.TypeProtoDelim)} {
		if _, err := e.col.jobs.gzipped(ctx, format); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v, want the context's", format, err)
		}
	}
	if n := e.col.jobs.cachedBytes(); n != 0 {
		t.Errorf("an aborted rendering left %d bytes in the cache", n)
	}
	w := httptest.NewRecorder()
	e.col.serve(ctx, w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(e.logs.String(), "past the scrape's deadline") {
		t.Errorf("HTTP %d, log:\n%s", w.Code, e.logs)
	}
}

// TestLabelsAreBounded: a label value longer than MaxLabelLength is cut on a
// UTF-8 boundary and marked, and counted; the workflows beyond MaxWorkflows
// share the overflow series, so every job is still counted once.
func TestLabelsAreBounded(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.MaxLabelLength, o.MaxWorkflows = 16, 3 })
	long := strings.Repeat("社区发现", 1<<15) // 384 KiB (the client refuses values over 1 MiB)
	e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: long, Status: explorer.StatusSuccess, CreateTime: t0})
	for w := 2; w <= 5; w++ {
		for i := range w {
			e.fake.AddJob(explorer.Job{WorkflowID: fmt.Sprint(w), WorkflowName: fmt.Sprint("wf", w), Status: explorer.StatusRunning,
				CreateTime: t0 + int64(w*100+i), RunBeginTime: t0 + 10_000})
		}
	}
	e.mustSync(t)
	got := jobMetrics(t, e.col)
	if len(got) > 100_000 {
		t.Fatalf("%d bytes of job metrics", len(got))
	}
	created := samples(t, got)
	want := map[string]float64{
		`nebula_explorer_jobs_created_total{workflow="社区发现…",workflow_id="1"}`:                            1,
		`nebula_explorer_jobs_created_total{workflow="wf2",workflow_id="2"}`:                              2,
		`nebula_explorer_jobs_created_total{workflow="wf3",workflow_id="3"}`:                              3,
		`nebula_explorer_jobs_created_total{workflow="__overflow__",workflow_id="__overflow__"}`:          4 + 5,
		`nebula_explorer_jobs{status="running",workflow="__overflow__",workflow_id="__overflow__"}`:       4 + 5,
		`nebula_explorer_workflow_oldest_running_start_timestamp_seconds{workflow="wf3",workflow_id="3"}`: float64(t0+10_000) / 1000,
	}
	for series, v := range want {
		if created[series] != v {
			t.Errorf("%s = %g, want %g", series, created[series], v)
		}
	}
	if n := strings.Count(got, "# TYPE nebula_explorer_jobs_created_total"); n != 1 || strings.Count(got, "nebula_explorer_jobs_created_total{") != 4 {
		t.Errorf("want 3 workflows and the overflow:\n%s", grepLines(got, "nebula_explorer_jobs_created_total{"))
	}
	if v, _ := scrapeValue(t, e.col, "nebula_explorer_workflows_label_truncated"); v != 1 {
		t.Errorf("workflows_label_truncated = %g, want 1", v)
	}
	// Later syncs keep every job where the first put it.
	e.fake.AddJob(explorer.Job{WorkflowID: "6", WorkflowName: "wf6", Status: explorer.StatusSuccess, CreateTime: t0 + 5000})
	e.fake.AddJob(explorer.Job{WorkflowID: "2", WorkflowName: "wf2", Status: explorer.StatusSuccess, CreateTime: t0 + 5001})
	e.mustSync(t)
	if got, want := jobMetrics(t, e.col), e.fresh(t); got != want {
		t.Errorf("values differ from a fresh exporter's:\n%s", diffSamples(t, got, want))
	}
}

func TestTaskNamesAreBounded(t *testing.T) {
	e := newTestEnv(t, withTasks(10), func(o *Options) { o.MaxLabelLength = 16 })
	e.fake.SetQuirks(explorertest.Quirks{TasksInListing: true})
	e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: t0, RunBeginTime: t0, RunEndTime: t0 + 5000,
		Tasks: []explorer.Task{{ID: "1", Name: strings.Repeat("PageRank", 1<<16), Status: explorer.StatusSuccess, RunBeginTime: taskTime(t0), RunEndTime: taskTime(t0 + 1000)}}})
	e.mustSync(t)
	got := jobMetrics(t, e.col)
	if series := `nebula_explorer_tasks_finished_total{status="success",task="PageRankPageR…",workflow="bfs",workflow_id="1"} 1`; !strings.Contains(got, series) || len(got) > 100_000 {
		t.Errorf("no %s in %d bytes:\n%s", series, len(got), grepLines(got, "tasks_finished_total{"))
	}
	if v, _ := scrapeValue(t, e.col, "nebula_explorer_task_names_truncated"); v != 1 {
		t.Errorf("task_names_truncated = %g, want 1", v)
	}
}

func TestCutLabel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"bfs", 16, "bfs"}, {"bfs", 0, "bfs"}, {"abcdefgh", 8, "abcdefgh"}, {"abcdefghi", 8, "abcde…"},
		{"社区发现", 8, "社…"}, {"社区发现", 9, "社区…"}, {"abcdef", 2, ""}, {"abcdef", 3, "…"},
	} {
		got, cut := cutLabel(tc.in, tc.n)
		if got != tc.want || cut != (got != tc.in) || (tc.n > 0 && len(got) > tc.n) || !utf8.ValidString(got) {
			t.Errorf("cutLabel(%q, %d) = %q, %v; want %q", tc.in, tc.n, got, cut, tc.want)
		}
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAnswersNotMatchingTheRequestFailTheSync: an Explorer that ignores the
// status filter of a listing, or answers GET jobs/<id> with another job,
// used to inflate the counters for good (success 110 -> 410 -> 710). Such
// an answer now fails the sync: up 0, values unchanged, one log line, and
// nebula_explorer_invalid_answers_total counts it by reason.
func TestAnswersNotMatchingTheRequestFailTheSync(t *testing.T) {
	for _, tc := range []struct {
		name       string
		oldRunning int // unfinished jobs older than the look-back: refreshed by status listings beyond maxDirectRefresh, else one by one
		quirks     explorertest.Quirks
		reason     string
	}{
		{"Explorer ignores the status filter", maxDirectRefresh + 1, explorertest.Quirks{IgnoreStatusFilter: true}, "item_outside_filter"},
		{"GET jobs/<id> answers another job", 2, explorertest.Quirks{WrongDetail: true}, "wrong_job"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			telemetry := NewTelemetry()
			e := newTestEnv(t, func(o *Options) { o.Lookback, o.Overlap, o.Telemetry = time.Minute, time.Minute, telemetry })
			for i := range tc.oldRunning {
				e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusRunning, CreateTime: t0 + int64(i), RunBeginTime: t0 + 10})
			}
			for i := range 110 {
				at := t0 + time.Hour.Milliseconds() + int64(i)*1000
				e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: at, RunBeginTime: at, RunEndTime: at + 500})
			}
			e.mustSync(t)
			before := jobMetrics(t, e.col)
			success := `nebula_explorer_jobs_finished_total{status="success",workflow="bfs",workflow_id="1"}`
			if v := samples(t, before)[success]; v != 110 {
				t.Fatalf("%s = %g before, want 110", success, v)
			}

			e.fake.SetQuirks(tc.quirks)
			var own bytes.Buffer
			e.col.logger = log.NewLogfmtLogger(&own)
			for range 2 {
				if e.sync(t) {
					t.Fatalf("a sync succeeded on answers that do not match the request; %s = %g", success, samples(t, jobMetrics(t, e.col))[success])
				}
				if got := jobMetrics(t, e.col); got != before {
					t.Fatalf("a failed sync changed the values:\n%s", diffSamples(t, got, before))
				}
			}
			if n := strings.Count(own.String(), "sync with Explorer failed"); n != 2 || strings.Count(own.String(), "\n") != 2 {
				t.Errorf("want one log line per failed sync:\n%s", &own)
			}
			if n := testutil.ToFloat64(telemetry.invalidAnswers.WithLabelValues(tc.reason)); n != 2 {
				t.Errorf("invalid_answers_total{reason=%q} = %g, want 2", tc.reason, n)
			}

			e.fake.SetQuirks(explorertest.Quirks{})
			e.mustSync(t)
			if got, want := jobMetrics(t, e.col), e.fresh(t); got != want {
				t.Errorf("the next good sync did not catch up:\n%s", diffSamples(t, got, want))
			}
		})
	}
}
