package collector

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

// The benchmarks run against the fake over real HTTP on 127.0.0.1, with the
// default options of the config file. Peak memory of the exporter process is
// measured separately, by BenchmarkExporterMemory in the main package.

var benchOptions = Options{
	PageSize:     1000,
	Overlap:      5 * time.Minute,
	Lookback:     time.Hour,
	SyncTimeout:  10 * time.Minute,
	RunBuckets:   []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400},
	QueueBuckets: []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
	TaskBuckets:  []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400},
	Tasks:        TaskOptions{Enabled: true, MaxRequestsPerSync: 50}, // no backfill: steady state from the start
}

// cpuClock reports, when stopped, the process CPU time per op (the fake's
// included): on a shared machine it is steadier than the wall time.
func cpuClock(b *testing.B) (stop func()) {
	start := cpuTime()
	return func() { b.ReportMetric(float64((cpuTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op") }
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchEnv(b *testing.B, jobs, workflows int) *testEnv {
	b.Helper()
	fake := explorertest.New()
	srv := explorertest.NewServer(fake)
	b.Cleanup(srv.Close)
	if jobs > 0 {
		fake.AddJobs(explorertest.Workload{Workflows: workflows, Seed: 1}.History(jobs))
	}
	e := &testEnv{fake: fake, url: srv.URL, opts: benchOptions, logs: &bytes.Buffer{}}
	e.col = e.newCollector(b)
	return e
}

// BenchmarkSteadySync: one scrape's sync after 50 new or changed jobs (30
// new, 10 starting, 10 finishing), on a long history, with the finished
// jobs' tasks in the listing or only in their detail (one request each).
func BenchmarkSteadySync(b *testing.B) {
	for _, jobs := range []int{100_000, 1_000_000} {
		for _, listing := range []bool{true, false} {
			b.Run(fmt.Sprintf("history=%d/tasks_in_listing=%v", jobs, listing), func(b *testing.B) {
				e := benchEnv(b, jobs, 200)
				e.fake.SetQuirks(explorertest.Quirks{TasksInListing: listing, TasksNull: !listing})
				e.col.Sync(context.Background())
				workflows := explorertest.Workload{Workflows: 200, Seed: 1}.WorkflowList()
				newest := e.fake.Jobs()[jobs-1].CreateTime
				requests, details := 0, e.fake.Stats().Details
				b.ResetTimer()
				defer cpuClock(b)()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					started, finished := 0, 0
					for id, u := range e.col.state.unfinished {
						switch {
						case u.runBegin == 0 && started < 10:
							started++
							e.fake.UpdateJob(id, func(j *explorer.Job) { j.Status, j.RunBeginTime = explorer.StatusRunning, newest })
						case u.runBegin > 0 && finished < 10:
							finished++
							e.fake.UpdateJob(id, func(j *explorer.Job) { j.Status, j.RunEndTime = explorer.StatusSuccess, max(newest, j.RunBeginTime) })
						}
					}
					for n := 0; n < 50-started-finished; n++ {
						newest += 2000
						w := workflows[n%len(workflows)]
						e.fake.AddJob(explorer.Job{WorkflowID: w.ID, WorkflowName: w.Name, CreateTime: newest})
					}
					b.StartTimer()
					e.col.Sync(context.Background())
					if !e.col.health.ok {
						b.Fatalf("sync failed: %s", e.logs)
					}
					requests += e.col.health.requests
				}
				b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
				b.ReportMetric(float64(e.fake.Stats().Details-details)/float64(b.N), "details/op")
			})
		}
	}
}

// BenchmarkColdSync is the first sync of a whole history; compare it with
// BenchmarkFetchEveryPage, the cost of merely fetching every page once.
func BenchmarkColdSync(b *testing.B) {
	e := benchEnv(b, 100_000, 200)
	b.ResetTimer()
	defer cpuClock(b)()
	for i := 0; i < b.N; i++ {
		c := e.newCollector(b)
		c.Sync(context.Background())
		if !c.health.ok {
			b.Fatalf("sync failed: %s", e.logs)
		}
		b.ReportMetric(float64(c.health.requests), "requests/op")
	}
}

func BenchmarkFetchEveryPage(b *testing.B) {
	e := benchEnv(b, 100_000, 200)
	client := e.col.client
	b.ResetTimer()
	defer cpuClock(b)()
	for i := 0; i < b.N; i++ {
		pages := 0
		for page := 1; ; page++ {
			p, err := client.ListJobs(context.Background(), explorer.Filter{OrderByCreateTime: "asc"}, page, benchOptions.PageSize)
			if err != nil {
				b.Fatal(err)
			}
			pages++
			if page*benchOptions.PageSize >= p.Total {
				break
			}
		}
		b.ReportMetric(float64(pages), "requests/op")
	}
}

// BenchmarkRender: rendering and encoding 1,000 workflows' metrics, each
// with 5 tasks, done once per sync that changed something and encoding, and
// serving them on a scrape (without its sync, which BenchmarkSteadySync
// measures) as Prometheus asks for them (text, gzip) and uncompressed.
func BenchmarkRender(b *testing.B) {
	e := benchEnv(b, 0, 0)
	e.fake.SetQuirks(explorertest.Quirks{TasksInListing: true})
	var tasks []explorer.Task
	for i, name := range []string{"Query", "BFS", "PageRank", "LPA", "WCC"} {
		tasks = append(tasks, explorer.Task{Name: name, Status: explorer.StatusSuccess,
			RunBeginTime: time.UnixMilli(1_700_000_000_000 + int64(i)*10_000).Format(time.RFC3339), RunEndTime: time.UnixMilli(1_700_000_000_000 + int64(i+1)*10_000).Format(time.RFC3339)})
	}
	for w := 0; w < 1000; w++ {
		for status := 0; status <= 5; status++ {
			t := int64(1_700_000_000_000) + int64(w*6+status)*1000
			e.fake.AddJob(explorer.Job{WorkflowID: fmt.Sprint(4_216_617_528 + w), WorkflowName: fmt.Sprintf("workflow_%d", w),
				Status: status, CreateTime: t, RunBeginTime: t + 500, RunEndTime: t + 90_000, Tasks: tasks})
		}
	}
	e.col.opts.Tasks.Backfill = time.Since(time.UnixMilli(1_700_000_000_000)) + time.Hour
	e.col.Sync(context.Background())
	if n := len(e.col.state.tasks.series); n != 1000 {
		b.Fatalf("tasks of %d workflows", n)
	}
	for name, format := range map[string]expfmt.Format{"text": expfmt.NewFormat(expfmt.TypeTextPlain),
		"protobuf": expfmt.NewFormat(expfmt.TypeProtoDelim), "openmetrics": expfmt.FmtOpenMetrics_1_0_0} {
		b.Run("sync/"+name, func(b *testing.B) {
			defer cpuClock(b)()
			size := 0
			for i := 0; i < b.N; i++ {
				body, err := newExposition(e.col.state).gzipped(context.Background(), format)
				if err != nil {
					b.Fatal(err)
				}
				size = len(body)
			}
			b.ReportMetric(float64(size), "gzip-bytes")
		})
	}
	e.col.opts.Extra = prometheus.DefaultGatherer
	for _, enc := range []string{"gzip", "identity"} {
		for _, accept := range []string{"text/plain;version=0.0.4;q=0.5,*/*;q=0.1", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"} {
			b.Run("serve/"+enc+"/"+strings.Split(accept, ";")[0], func(b *testing.B) {
				size := 0
				defer cpuClock(b)()
				for i := 0; i < b.N; i++ {
					r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
					r.Header.Set("Accept", accept)
					r.Header.Set("Accept-Encoding", enc)
					w := httptest.NewRecorder()
					e.col.serve(context.Background(), w, r)
					if w.Code != 200 || !e.col.health.ok {
						b.Fatalf("HTTP %d", w.Code)
					}
					size = w.Body.Len()
				}
				b.ReportMetric(float64(size), "bytes")
			})
		}
	}
}
