package collector

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

func addHistory(fake *explorertest.Explorer, n int, from int64) (last int64) {
	for i := 0; i < n; i++ {
		last = from + int64(i)*1000
		status := []int{explorer.StatusSuccess, explorer.StatusFailed, explorer.StatusInterrupted}[i%3]
		fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: status,
			CreateTime: last, RunBeginTime: last + 500, RunEndTime: last + 500 + int64(i)*100})
	}
	return last
}

func TestFailedSyncKeepsLastValues(t *testing.T) {
	cases := []struct {
		name   string
		quirks explorertest.Quirks
		hang   bool // Explorer never answers: only sync.timeout ends the sync
	}{
		{"an error code in an HTTP 200 answer", explorertest.Quirks{ErrorCode: explorer.CodeInternalController}, false},
		{"HTTP 500", explorertest.Quirks{HTTPStatus: 500}, false},
		{"a truncated answer", explorertest.Quirks{TruncateBody: true}, false},
		{"a refused login", explorertest.Quirks{RefuseLogins: true, TokenUses: 1}, false},
		{"a timeout", explorertest.Quirks{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			last := addHistory(e.fake, 10, t0)
			e.mustSync(t)
			before := jobMetrics(t, e.col)

			addHistory(e.fake, 5, last+1000)
			quirks := tc.quirks
			if tc.hang {
				// A short sync.timeout for the failing sync alone: the good
				// syncs keep the generous one of testOptions, which a
				// loaded machine needs. No sync runs now to read it.
				quirks.Hang = hang(t)
				e.col.opts.SyncTimeout = 300 * time.Millisecond
			}
			e.fake.SetQuirks(quirks)
			if e.sync(t) {
				t.Fatal("sync succeeded against a failing Explorer")
			}
			e.col.opts.SyncTimeout = e.opts.SyncTimeout
			if got := jobMetrics(t, e.col); got != before {
				t.Errorf("values changed by a failed sync:\n%s", diffSamples(t, got, before))
			}
			if !strings.Contains(e.logs.String(), "sync with Explorer failed") {
				t.Errorf("no log line says the sync failed:\n%s", e.logs)
			}

			e.fake.SetQuirks(explorertest.Quirks{})
			e.mustSync(t)
			if got, want := jobMetrics(t, e.col), e.fresh(t); got != want {
				t.Errorf("the next good sync did not catch up:\n%s", diffSamples(t, got, want))
			}
		})
	}
	t.Run("a sync that fails half-way applies nothing", func(t *testing.T) {
		e := newTestEnv(t)
		last := addHistory(e.fake, 10, t0)
		e.mustSync(t)
		before := jobMetrics(t, e.col)
		addHistory(e.fake, 10, last+1000) // more than one page of new jobs
		e.fake.SetQuirks(explorertest.Quirks{OnList: func(_ explorer.Filter, page int) {
			e.fake.SetQuirks(explorertest.Quirks{HTTPStatus: 502}) // the next request fails
		}})
		if e.sync(t) {
			t.Fatal("sync succeeded")
		}
		if got := jobMetrics(t, e.col); got != before {
			t.Errorf("a failed sync applied part of its pages:\n%s", diffSamples(t, got, before))
		}
	})
	t.Run("no log line shows the password or the token", func(t *testing.T) {
		e := newTestEnv(t)
		e.fake.SetCredentials("root", "other")
		e.sync(t)
		if logs := e.logs.String(); strings.Contains(logs, "nebula") || strings.Contains(logs, "explorer_token=") {
			t.Errorf("log shows a secret:\n%s", logs)
		}
	})
}

func TestOldUnfinishedJobsAreRefreshed(t *testing.T) {
	for _, n := range []int{2, maxDirectRefresh + 3} {
		e := newTestEnv(t, func(o *Options) { o.Lookback, o.Overlap = time.Minute, time.Minute })
		var old []int64
		for i := 0; i < n; i++ {
			old = append(old, e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", CreateTime: t0 + int64(i),
				Status: explorer.StatusRunning, RunBeginTime: t0 + 100}).ID)
		}
		addHistory(e.fake, 10, t0+time.Hour.Milliseconds()) // pushes the old jobs out of the look-back
		e.mustSync(t)
		for i, id := range old {
			e.fake.UpdateJob(id, func(j *explorer.Job) {
				switch i % 3 {
				case 0:
					j.Status, j.RunEndTime = explorer.StatusFailed, t0+2*time.Hour.Milliseconds()
				case 1:
					j.Status = explorer.StatusStopping
				default:
					j.Status = 8 // undocumented: listed by its own status
				}
			})
		}
		if n > maxDirectRefresh {
			// The status listings also find an old unfinished job that shows up only now.
			e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", CreateTime: t0 + 50, Status: explorer.StatusPreparing})
		}
		e.mustSync(t)
		if got, want := jobMetrics(t, e.col), e.fresh(t); got != want {
			t.Errorf("%d old unfinished jobs: values differ from a fresh exporter's:\n%s", n, diffSamples(t, got, want))
		}
	}
}

func TestDeletedJobs(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.FullResyncInterval = time.Nanosecond }) // every sync is a full one
	addHistory(e.fake, 9, t0)
	e.mustSync(t)
	before := jobMetrics(t, e.col)
	for _, j := range e.fake.Jobs()[:4] {
		e.fake.DeleteJob(j.ID)
	}
	e.mustSync(t)
	after := jobMetrics(t, e.col)
	t.Run("counters and histograms do not drop", func(t *testing.T) {
		assertCountersDidNotDrop(t, before, after)
	})
	t.Run("the jobs gauge follows Explorer", func(t *testing.T) {
		if !strings.Contains(after, `nebula_explorer_jobs{status="success",workflow="bfs",workflow_id="1"} 1`) {
			t.Errorf("gauge did not drop to the 1 success left:\n%s", after)
		}
	})
	t.Run("a renamed workflow gets new series", func(t *testing.T) {
		e.fake.RenameWorkflow("1", "bfs_v2")
		e.mustSync(t)
		got := jobMetrics(t, e.col)
		if strings.Contains(got, `workflow="bfs",`) || !strings.Contains(got, `workflow="bfs_v2"`) {
			t.Errorf("series after rename:\n%s", got)
		}
	})
}

func TestSyncCost(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.PageSize, o.Overlap = 100, 10*time.Second })
	last := addHistory(e.fake, 1000, t0)
	e.mustSync(t)
	if r := e.col.health.requests; r > 11 {
		t.Errorf("first sync of 1000 jobs in pages of 100: %d requests", r)
	}
	running := e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", CreateTime: last + 1000, Status: explorer.StatusRunning, RunBeginTime: last + 1100})
	e.mustSync(t)
	addHistory(e.fake, 40, last+2000)
	e.fake.UpdateJob(running.ID, func(j *explorer.Job) { j.Status, j.RunEndTime = explorer.StatusSuccess, last+9000 })
	e.mustSync(t)
	if r := e.col.health.requests; r > 1 {
		t.Errorf("steady sync after 40 new jobs and 1 finished: %d requests, want 1", r)
	}
}

// TestConcurrentScrapesShareOneSync: scrapes that come while a sync is under
// way join it instead of starting their own. A barrier in OnList holds the
// first sync at its first page while the other scrapes come.
func TestConcurrentScrapesShareOneSync(t *testing.T) {
	e := newTestEnv(t)
	addHistory(e.fake, 5, t0) // two pages
	e.fresh(t)
	oneSync := e.fake.Stats().Lists // what one sync of this history lists
	e.fake.ResetStats()

	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.fake.SetQuirks(explorertest.Quirks{OnList: func(explorer.Filter, int) {
		once.Do(func() { close(held); <-release })
	}})
	first := make(chan struct{})
	go func() { defer close(first); e.col.Sync(context.Background()) }()
	<-held
	e.col.mu.Lock()
	running := e.col.running
	e.col.mu.Unlock()

	// Seven more scrapes, while the first sync is held; their deadlines have
	// passed already, so each joins and returns at once.
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for range 7 {
		e.col.Sync(ended)
	}
	e.col.mu.Lock()
	joined := e.col.running == running
	e.col.mu.Unlock()
	close(release)
	<-first
	if !joined {
		t.Error("a scrape started a second sync while one was under way")
	}
	if s := e.fake.Stats(); s.Lists != oneSync {
		t.Errorf("8 concurrent scrapes made %d listing requests; one sync makes %d", s.Lists, oneSync)
	}
}

func TestTokenDiesMidSync(t *testing.T) {
	for _, http200 := range []bool{false, true} {
		e := newTestEnv(t)
		addHistory(e.fake, 20, t0) // 7 pages of 3
		e.fake.SetQuirks(explorertest.Quirks{TokenUses: 2, AuthErrorHTTP200: http200})
		e.mustSync(t)
		if got, want := jobMetrics(t, e.col), e.fresh(t); got != want {
			t.Errorf("HTTP 200 errors %v: values differ from a fresh exporter's:\n%s", http200, diffSamples(t, got, want))
		}
		if s := e.fake.Stats(); s.Logins < 4 {
			t.Errorf("HTTP 200 errors %v: %d logins; the token should have died mid-sync", http200, s.Logins)
		}
	}
}

// TestFailureLogSaysWhatIsServed: the log line of a failed sync says whether
// the last synced values are served, or that there are none yet; and a
// timeout's hint names the limit that fired.
func TestFailureLogSaysWhatIsServed(t *testing.T) {
	failedSyncLog := func(e *testEnv) string {
		for _, line := range strings.Split(e.logs.String(), "\n") {
			if strings.Contains(line, "sync with Explorer failed") {
				return line
			}
		}
		t.Fatalf("no log line says the sync failed:\n%s", e.logs)
		return ""
	}
	t.Run("before any good sync there are no values to serve", func(t *testing.T) {
		e := newTestEnv(t)
		e.fake.SetQuirks(explorertest.Quirks{HTTPStatus: 500})
		e.sync(t)
		if line := failedSyncLog(e); strings.Contains(line, "serving the last synced values") || !strings.Contains(line, "no synced values yet") {
			t.Errorf("log line: %s", line)
		}
	})
	t.Run("after a good sync the last values are served", func(t *testing.T) {
		e := newTestEnv(t)
		e.mustSync(t)
		e.fake.SetQuirks(explorertest.Quirks{HTTPStatus: 500})
		e.sync(t)
		if line := failedSyncLog(e); !strings.Contains(line, "serving the last synced values") {
			t.Errorf("log line: %s", line)
		}
	})
	t.Run("a request timeout hints at explorer.timeout", func(t *testing.T) {
		e := newTestEnv(t)
		e.requestTimeout = 50 * time.Millisecond
		e.col = e.newCollector(t)
		e.fake.SetQuirks(explorertest.Quirks{Hang: hang(t)}) // no answer before the timeout, however slow the machine
		e.sync(t)
		if line := failedSyncLog(e); !strings.Contains(line, "raise explorer.timeout") || strings.Contains(line, "sync.timeout") {
			t.Errorf("log line: %s", line)
		}
	})
	t.Run("the sync's own timeout hints at sync.timeout", func(t *testing.T) {
		e := newTestEnv(t, func(o *Options) { o.SyncTimeout = 50 * time.Millisecond })
		e.fake.SetQuirks(explorertest.Quirks{Hang: hang(t)}) // no answer before the timeout, however slow the machine
		e.sync(t)
		if line := failedSyncLog(e); !strings.Contains(line, "raise sync.timeout (50ms)") || strings.Contains(line, "explorer.timeout") {
			t.Errorf("log line: %s", line)
		}
	})
}

// hang is a Quirks.Hang held until the test ends, before its fake Explorer
// closes (a request still holding a login's unread body would keep the
// server's Close waiting).
func hang(t *testing.T) <-chan struct{} {
	ch := make(chan struct{})
	t.Cleanup(func() { close(ch) })
	return ch
}
