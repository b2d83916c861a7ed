package collector

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

// TestParallelFullSyncIsExact: a full sync in concurrent windows computes
// what one sequential pass computes, whatever the density of the history,
// with page caps, crowded milliseconds and jobs created or finishing while
// it pages; the next sync then equals a fresh exporter's.
func TestParallelFullSyncIsExact(t *testing.T) {
	type history func(fake *explorertest.Explorer, rng *rand.Rand)
	spread := func(fake *explorertest.Explorer, rng *rand.Rand) {
		for i := range 200 {
			ct := t0 + int64(i)*60_000 + int64(rng.Intn(1000))
			fake.AddJob(randomJob(rng, ct))
		}
	}
	cases := []struct {
		name    string
		history history
		quirks  explorertest.Quirks
		inserts bool
	}{
		{"jobs spread evenly", spread, explorertest.Quirks{}, false},
		{"most jobs in one hour of a year", func(fake *explorertest.Explorer, rng *rand.Rand) {
			fake.AddJob(randomJob(rng, t0-365*24*3600_000))
			for i := range 300 {
				fake.AddJob(randomJob(rng, t0+int64(i)*10_000))
			}
			fake.AddJob(randomJob(rng, t0+365*24*3600_000))
		}, explorertest.Quirks{}, false},
		{"many jobs in one millisecond", func(fake *explorertest.Explorer, rng *rand.Rand) {
			spread(fake, rng)
			for range 100 {
				fake.AddJob(randomJob(rng, t0+90*60_000))
			}
		}, explorertest.Quirks{}, false},
		{"pages capped below the size asked", spread, explorertest.Quirks{MaxPageSize: 2}, false},
		{"exclusive time bounds", spread, explorertest.Quirks{ExclusiveTimeFilter: true}, false},
		{"jobs created and finishing while it pages", spread, explorertest.Quirks{}, true},
	}
	for _, tc := range cases {
		for _, concurrency := range []int{1, 4, 16} {
			t.Run(fmt.Sprintf("%s, concurrency %d", tc.name, concurrency), func(t *testing.T) {
				e := newTestEnv(t, func(o *Options) { o.Concurrency = concurrency })
				rng := rand.New(rand.NewSource(int64(concurrency)))
				tc.history(e.fake, rng)
				want := e.fresh(t)
				q := tc.quirks
				if tc.inserts {
					var mu sync.Mutex
					newest := e.fake.Jobs()[e.fake.Len()-1].CreateTime
					q.OnList = func(explorer.Filter, int) {
						mu.Lock()
						defer mu.Unlock()
						newest += 1000
						e.fake.AddJob(randomJob(rng, newest))
						jobs := e.fake.Jobs()
						j := jobs[rng.Intn(len(jobs))]
						if !explorer.IsTerminal(j.Status) {
							e.fake.UpdateJob(j.ID, func(j *explorer.Job) {
								if j.RunBeginTime == 0 {
									j.RunBeginTime = newest
								}
								j.Status, j.RunEndTime = explorer.StatusFailed, newest+500
							})
						}
					}
				}
				e.fake.SetQuirks(q)
				e.mustSync(t)
				got := jobMetrics(t, e.col)
				e.fake.SetQuirks(tc.quirks)
				if !tc.inserts && got != want {
					t.Fatalf("values differ from a sequential sync's:\n%s", diffSamples(t, got, want))
				}
				if created := sumOf(t, got, "nebula_explorer_jobs_created_total"); created > float64(e.fake.Len()) {
					t.Errorf("%v jobs counted as created, Explorer has %d: some counted twice", created, e.fake.Len())
				}
				e.mustSync(t)
				if got, want := jobMetrics(t, e.col), e.fresh(t); got != want {
					t.Errorf("the next sync differs from a fresh exporter's:\n%s", diffSamples(t, got, want))
				}
			})
		}
	}
}

// TestParallelFullSyncSharesTheWork: with 4 workers the history is paged in
// windows, and splitting costs few requests beyond the pages.
func TestParallelFullSyncSharesTheWork(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.Concurrency = 4; o.PageSize = 10 })
	rng := rand.New(rand.NewSource(1))
	for i := range 1000 {
		e.fake.AddJob(randomJob(rng, t0+int64(i)*1000))
	}
	var mu sync.Mutex
	windows := map[int64]bool{} // by upper bound
	e.fake.SetQuirks(explorertest.Quirks{OnList: func(f explorer.Filter, _ int) {
		mu.Lock()
		windows[f.ToCreateTime] = true
		mu.Unlock()
	}})
	e.mustSync(t)
	if got := e.col.health.requests; got > 150 { // 100 pages, counting halves, a last page per window
		t.Errorf("%d requests for 100 pages", got)
	}
	if len(windows) < 4 {
		t.Errorf("the history was paged in %d windows, want at least one per worker", len(windows))
	}
	t.Logf("%d requests, %d windows", e.col.health.requests, len(windows))
}

func randomJob(rng *rand.Rand, createTime int64) explorer.Job {
	w := rng.Intn(3)
	j := explorer.Job{WorkflowID: fmt.Sprint(w + 1), WorkflowName: fmt.Sprintf("wf%d", w), CreateTime: createTime,
		Status: rng.Intn(7)}
	if j.Status != explorer.StatusPreparing {
		j.RunBeginTime = createTime + int64(rng.Intn(5000))
	}
	if explorer.IsTerminal(j.Status) && rng.Intn(5) > 0 {
		j.RunEndTime = j.RunBeginTime + int64(rng.Intn(200_000))
	}
	return j
}

func sumOf(t *testing.T, text, name string) float64 {
	t.Helper()
	total := 0.0
	for k, v := range samples(t, text) {
		if len(k) > len(name) && k[:len(name)+1] == name+"{" {
			total += v
		}
	}
	return total
}

// BenchmarkParallelColdSync: the first sync of 1M jobs against a fake that
// answers like a database (5 ms + 5 µs per item of a page), with 1, 2, 4
// and 8 windows at once, against fetching every page once in sequence
// (offset paging, nothing folded): x-fetch is the ratio.
func BenchmarkParallelColdSync(b *testing.B) {
	const jobs = 1_000_000
	e := benchEnv(b, jobs, 200)
	e.fake.SetQuirks(explorertest.Quirks{Delay: 5 * time.Millisecond, DelayPerItem: 5 * time.Microsecond})
	var fetch time.Duration
	b.Run("fetch every page", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			for page := 1; ; page++ {
				p, err := e.col.client.ListJobs(context.Background(), explorer.Filter{OrderByCreateTime: "asc"}, page, benchOptions.PageSize)
				if err != nil {
					b.Fatal(err)
				}
				if page*benchOptions.PageSize >= p.Total {
					break
				}
			}
		}
		fetch = time.Since(start) / time.Duration(b.N)
	})
	for _, concurrency := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", concurrency), func(b *testing.B) {
			e.opts.Concurrency = concurrency
			start := time.Now()
			for range b.N {
				c := e.newCollector(b)
				c.Sync(context.Background())
				if !c.health.ok {
					b.Fatalf("sync failed: %s", e.logs)
				}
				b.ReportMetric(float64(c.health.requests), "requests/op")
			}
			if fetch > 0 {
				b.ReportMetric(float64(time.Since(start)/time.Duration(b.N))/float64(fetch), "x-fetch")
			}
		})
	}
}
