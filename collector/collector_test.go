package collector

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

var testOptions = Options{
	PageSize:     3, // small, so every test pages
	Overlap:      time.Minute,
	Lookback:     time.Hour,
	SyncTimeout:  10 * time.Second,
	RunBuckets:   []float64{1, 10, 100},
	QueueBuckets: []float64{1, 10},
}

// testEnv is a collector synced against a fake Explorer over real HTTP.
type testEnv struct {
	fake *explorertest.Explorer
	url  string
	opts Options
	col  *Collector
	logs *bytes.Buffer

	requestTimeout time.Duration // the client's per-request timeout (explorer.timeout); 0: 10 s
}

func newTestEnv(t *testing.T, change ...func(*Options)) *testEnv {
	t.Helper()
	fake := explorertest.New()
	srv := explorertest.NewServer(fake)
	t.Cleanup(srv.Close)
	opts := testOptions
	for _, f := range change {
		f(&opts)
	}
	e := &testEnv{fake: fake, url: srv.URL, opts: opts, logs: &bytes.Buffer{}}
	e.col = e.newCollector(t)
	return e
}

func (e *testEnv) newCollector(t testing.TB) *Collector {
	t.Helper()
	return e.newCollectorWith(t, e.opts)
}

func (e *testEnv) newCollectorWith(t testing.TB, opts Options) *Collector {
	t.Helper()
	client, err := explorer.NewClient(explorer.Config{
		URL: e.url, Username: "root", Password: func() (string, error) { return "nebula", nil },
		GraphAddress: "127.0.0.1", GraphPort: 9669,
		HTTPClient: &http.Client{Timeout: cmp.Or(e.requestTimeout, 10*time.Second)},
		OnRequest:  e.opts.Telemetry.ObserveRequest, // as main wires it; nil Telemetry: nothing
	})
	if err != nil {
		t.Fatal(err)
	}
	return New(client, opts, log.NewLogfmtLogger(log.NewSyncWriter(e.logs)))
}

// sync runs one sync and reports whether it succeeded.
func (e *testEnv) sync(t *testing.T) bool {
	t.Helper()
	e.col.Sync(context.Background())
	e.col.mu.Lock()
	defer e.col.mu.Unlock()
	return e.col.health.ok
}

func (e *testEnv) mustSync(t *testing.T) {
	t.Helper()
	if !e.sync(t) {
		t.Fatalf("sync failed; log:\n%s", e.logs)
	}
}

// jobMetrics is the exposition text of the job metrics (not the sync's health).
func jobMetrics(t *testing.T, c *Collector) string {
	t.Helper()
	families, err := c.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, f := range families {
		switch f.GetName() {
		case "nebula_explorer_up", "nebula_explorer_sync_duration_seconds", "nebula_explorer_sync_api_requests",
			"nebula_explorer_last_sync_success_timestamp_seconds", "nebula_explorer_job_create_time_ahead_seconds",
			"nebula_explorer_persistence_last_write_timestamp_seconds", "nebula_explorer_persistence_last_write_success":
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// fresh is what a newly started exporter computes from the fake's state now.
func (e *testEnv) fresh(t *testing.T) string {
	t.Helper()
	opts := e.opts
	opts.PersistenceFile = "" // no saved state
	c := e.newCollectorWith(t, opts)
	c.opts.Tasks.MaxRequestsPerSync = 1 << 30 // the tasks of every finished job at once
	c.opts.Concurrency = 1                    // the reference: one sequential pass
	c.Sync(context.Background())
	if !c.health.ok {
		t.Fatalf("fresh sync failed; log:\n%s", e.logs)
	}
	return jobMetrics(t, c)
}

const t0 = int64(1_700_000_000_000) // ms

func TestJobLifecycleAcrossScrapes(t *testing.T) {
	e := newTestEnv(t)
	// Items leave out zero run times, as the docs allow: the preparing job,
	// listed right after a finished one, must not inherit its times.
	e.fake.SetQuirks(explorertest.Quirks{OmitZeroTimes: true, TasksNull: true})
	e.fake.AddJob(explorer.Job{WorkflowID: "42", WorkflowName: "bfs", Status: explorer.StatusSuccess,
		CreateTime: t0, RunBeginTime: t0 + 2000, RunEndTime: t0 + 7000})
	job := e.fake.AddJob(explorer.Job{WorkflowID: "42", WorkflowName: "bfs", Status: explorer.StatusPreparing, CreateTime: t0 + 60_000})
	check := func(golden string) {
		t.Helper()
		if !e.sync(t) {
			t.Fatalf("%s: sync failed: %s", golden, e.logs)
		}
		got := jobMetrics(t, e.col)
		assertGolden(t, golden, []byte(got))
		if fresh := e.fresh(t); got != fresh {
			t.Errorf("%s: incremental values differ from a fresh exporter's:\n%s", golden, diffSamples(t, got, fresh))
		}
	}
	check("lifecycle_1_success_and_preparing.prom")
	e.fake.UpdateJob(job.ID, func(j *explorer.Job) { j.Status, j.RunBeginTime = explorer.StatusRunning, t0+60_500 })
	check("lifecycle_2_second_runs.prom")
	e.fake.UpdateJob(job.ID, func(j *explorer.Job) { j.Status, j.RunEndTime = explorer.StatusSuccess, t0+120_500 })
	check("lifecycle_3_second_succeeds_after_60s.prom")
}

// TestMatchesFreshExporter is the property the contract promises: after any
// sequence of changes Explorer can make, the incrementally synced values
// (task metrics of the jobs finishing meanwhile included) equal what a fresh
// exporter computes, and counters never drop. Seeds 7 and
// 8 also delete jobs, with a full resync every sync: then the gauges (the
// last job's among them) still equal a fresh exporter's, while counters keep
// what they counted.
func TestMatchesFreshExporter(t *testing.T) {
	for run := range 16 { // seeds 1 to 8, with concurrency 1 and 4
		seed, concurrency := int64(run%8+1), 1+3*(run/8)
		deletes := seed > 6
		t.Run(fmt.Sprintf("concurrency %d, random history %d", concurrency, seed), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, func(o *Options) {
				o.Lookback = 10 * time.Minute
				o.Concurrency = concurrency
				// For the restart at step 20.
				o.PersistenceFile = filepath.Join(t.TempDir(), "state")
				if deletes || (concurrency > 1 && seed%2 == 0) { // every sync a full one
					o.FullResyncInterval = time.Nanosecond
				}
			}, withTasks(1000))
			e.fake.SetQuirks(explorertest.Quirks{OmitZeroTimes: seed%2 == 1, TasksNull: seed%2 == 0, ExclusiveTimeFilter: seed%3 == 0,
				TasksInListingOf: map[string]bool{"2": seed%4 < 2}})
			e.fake.SetNow(func() time.Time { return time.UnixMilli(t0) }) // the made-up tasks of a job never change
			rng := rand.New(rand.NewSource(seed))
			now := t0
			workflows := []explorer.Job{{WorkflowID: "1", WorkflowName: "bfs"}, {WorkflowID: "2", WorkflowName: `pr "daily"\n`},
				{WorkflowID: "3", WorkflowName: "社区发现"}}
			var unfinished []int64
			prev := ""
			for step := 0; step < 40; step++ {
				for n := rng.Intn(6); n > 0; n-- {
					now += int64(rng.Intn(20_000))
					w := workflows[rng.Intn(len(workflows))]
					j := explorer.Job{WorkflowID: w.WorkflowID, WorkflowName: w.WorkflowName, CreateTime: now}
					switch rng.Intn(10) {
					case 0: // visible late, but within the overlap
						j.CreateTime = now - int64(rng.Intn(50_000))
					case 1:
						j.Status = 9 // undocumented
					}
					unfinished = append(unfinished, e.fake.AddJob(j).ID)
				}
				for i := 0; i < len(unfinished); i++ {
					id := unfinished[i]
					if rng.Intn(3) != 0 {
						continue
					}
					e.fake.UpdateJob(id, func(j *explorer.Job) {
						switch {
						case j.Status == explorer.StatusPreparing || j.Status == 9:
							j.Status, j.RunBeginTime = explorer.StatusRunning, now-int64(rng.Intn(5000))
						case j.Status == explorer.StatusRunning && rng.Intn(4) == 0:
							j.Status = explorer.StatusStopping
						default:
							j.Status = explorer.StatusSuccess + rng.Intn(3)
							if j.RunBeginTime > 0 || rng.Intn(2) == 0 {
								j.RunEndTime = now + int64(rng.Intn(1000_000))
								if rng.Intn(3) == 0 {
									j.RunEndTime = now // ties with the others ending now
								}
							}
						}
					})
					if j, _ := e.fake.Job(id); explorer.IsTerminal(j.Status) {
						unfinished = append(unfinished[:i], unfinished[i+1:]...)
						i--
					}
				}
				if deletes {
					for _, j := range e.fake.Jobs() {
						if rng.Intn(8) == 0 {
							e.fake.DeleteJob(j.ID)
						}
					}
				}
				if step == 20 {
					e.col = e.newCollector(t) // kill -9 and restart: the state comes from the file
					if e.col.state == nil {
						t.Fatalf("no state loaded from the file:\n%s", e.logs)
					}
				}
				e.mustSync(t)
				got := jobMetrics(t, e.col)
				if want := e.fresh(t); deletes {
					if g, w := gauges(got), gauges(want); g != w {
						t.Fatalf("step %d: gauges differ from a fresh exporter's:\n%s", step, diffSamples(t, g, w))
					}
				} else if got != want {
					t.Fatalf("step %d: incremental values differ from a fresh exporter's:\n%s", step, diffSamples(t, got, want))
				}
				assertCountersDidNotDrop(t, prev, got)
				prev = got
			}
		})
	}
}

// gauges keeps the gauge samples of an exposition: what follows deletions.
func gauges(text string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(text, "\n") {
		name, _, _ := strings.Cut(line, "{")
		if line == "" || strings.HasPrefix(line, "#") || isCumulative(name) {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// isCumulative reports whether a sample name is a counter's or a histogram's.
func isCumulative(name string) bool {
	for _, suffix := range []string{"_total", "_bucket", "_sum", "_count"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// assertCountersDidNotDrop compares every counter and histogram sample
// (counts, sums, buckets) of two expositions.
func assertCountersDidNotDrop(t *testing.T, before, after string) {
	t.Helper()
	if before == "" {
		return
	}
	old, now := samples(t, before), samples(t, after)
	for k, v := range old {
		if name, _, _ := strings.Cut(k, "{"); !isCumulative(name) {
			continue
		}
		if n, ok := now[k]; ok && n < v {
			t.Errorf("%s dropped from %g to %g", k, v, n)
		}
	}
}

func samples(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err != nil {
			t.Fatalf("bad sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestGatherErrorNeverFailsTheScrape: an error gathering the exporter's own
// metrics is logged, and the scrape is served whether or not a sync has
// succeeded yet.
func TestGatherErrorNeverFailsTheScrape(t *testing.T) {
	e := newTestEnv(t)
	e.col.opts.Extra = prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return nil, errors.New("broken gatherer")
	})
	scrape := func() (int, string) {
		w := httptest.NewRecorder()
		e.col.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return w.Code, w.Body.String()
	}
	e.fake.SetQuirks(explorertest.Quirks{HTTPStatus: http.StatusInternalServerError})
	if code, body := scrape(); code != 200 || !strings.Contains(body, "nebula_explorer_up 0") {
		t.Fatalf("before any good sync: HTTP %d:\n%s", code, body)
	}
	e.fake.SetQuirks(explorertest.Quirks{})
	e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: t0})
	if code, body := scrape(); code != 200 || !strings.Contains(body, "nebula_explorer_up 1") {
		t.Fatalf("after a good sync: HTTP %d:\n%s", code, body)
	}
	if !strings.Contains(e.logs.String(), "broken gatherer") {
		t.Errorf("the gather error is not logged:\n%s", e.logs.String())
	}
}

func TestScrapeHandler(t *testing.T) {
	e := newTestEnv(t)
	e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: t0})
	h := e.col
	get := func() (int, string) {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "2")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	t.Run("a good sync answers up 1 with the job metrics", func(t *testing.T) {
		code, body := get()
		if code != 200 || !strings.Contains(body, "nebula_explorer_up 1") ||
			!strings.Contains(body, `nebula_explorer_jobs_created_total{workflow="bfs",workflow_id="1"} 1`) {
			t.Fatalf("HTTP %d:\n%s", code, body)
		}
	})
	t.Run("protobuf and gzip, as Prometheus may ask, decode to every family", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		r.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeProtoDelim)))
		r.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Header().Get("Content-Encoding") != "gzip" {
			t.Fatalf("headers %v", w.Header())
		}
		zr, err := gzip.NewReader(w.Body) // two gzip members: the cached job metrics, then the rest
		if err != nil {
			t.Fatal(err)
		}
		dec := expfmt.NewDecoder(zr, expfmt.ResponseFormat(w.Result().Header))
		names := map[string]bool{}
		for {
			var f dto.MetricFamily
			if err := dec.Decode(&f); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			names[f.GetName()] = true
		}
		for _, want := range []string{"nebula_explorer_up", "nebula_explorer_jobs", "nebula_explorer_job_run_duration_seconds"} {
			if !names[want] {
				t.Errorf("no %s in %v", want, names)
			}
		}
	})
	t.Run("a failing Explorer answers 200 with up 0 and the last synced values", func(t *testing.T) {
		e.fake.SetQuirks(explorertest.Quirks{HTTPStatus: 500})
		code, body := get()
		if code != 200 || !strings.Contains(body, "nebula_explorer_up 0") ||
			!strings.Contains(body, `nebula_explorer_jobs_created_total{workflow="bfs",workflow_id="1"} 1`) {
			t.Fatalf("HTTP %d:\n%s", code, body)
		}
	})
	t.Run("a scrape does not wait past its timeout for a slow Explorer", func(t *testing.T) {
		e.fake.SetQuirks(explorertest.Quirks{Delay: 3 * time.Second})
		start := time.Now()
		code, body := get()
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("scrape took %v with a 2 s scrape timeout", took)
		}
		if code != 200 || !strings.Contains(body, `nebula_explorer_jobs_created_total{workflow="bfs",workflow_id="1"} 1`) {
			t.Fatalf("HTTP %d:\n%s", code, body)
		}
		e.fake.SetQuirks(explorertest.Quirks{})
	})
}

// diffSamples lists the samples whose values differ between two expositions.
func diffSamples(t *testing.T, got, want string) string {
	t.Helper()
	g, w := samples(t, got), samples(t, want)
	var b strings.Builder
	for k, v := range w {
		if gv, ok := g[k]; !ok || gv != v {
			fmt.Fprintf(&b, "%s: got %v (present %v), want %g\n", k, gv, ok, v)
		}
	}
	for k, v := range g {
		if _, ok := w[k]; !ok {
			fmt.Fprintf(&b, "%s: got %g, want absent\n", k, v)
		}
	}
	return b.String()
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"gzip": true, "identity": false, "": false, "deflate, gzip;q=0.5": true,
		"gzip;q=0": false, "gzip; q=0.0": false, "GZIP": true, "gzip;q=1.0, identity": true,
	} {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		r.Header.Set("Accept-Encoding", header)
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: acceptsGzip = %v, want %v", header, got, want)
		}
	}
}
