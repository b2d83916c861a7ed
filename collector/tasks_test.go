package collector

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer/explorertest"
)

// withTasks turns the task metrics on, with a backfill that reaches back
// past t0, and a fake clock at t0 for the tasks the fake makes up.
func withTasks(budget int) func(*Options) {
	return func(o *Options) {
		o.Tasks = TaskOptions{Enabled: true, MaxRequestsPerSync: budget, Backfill: time.Since(time.UnixMilli(t0)) + time.Hour}
		o.TaskBuckets = []float64{1, 10}
	}
}

func taskTime(ms int64) string {
	return time.UnixMilli(ms).In(time.FixedZone("CST", 8*3600)).Format(time.RFC3339)
}

// TestTaskMetrics: tasks from the listing (bfs) and from job detail (pr),
// by the task's own terminal status; tasks that never ran are not counted;
// a malformed time is counted, not observed; a nameless task is "unknown";
// the backlog waits for the next sync when the budget is spent; tasks
// disabled, none of it.
func TestTaskMetrics(t *testing.T) {
	e := newTestEnv(t, withTasks(1))
	e.fake.SetQuirks(explorertest.Quirks{TasksInListingOf: map[string]bool{"1": true}, TasksNull: true})
	task := func(name string, status int, beginMs, endMs int64) explorer.Task {
		return explorer.Task{ID: name, Name: name, Status: status, RunBeginTime: taskTime(t0 + beginMs), RunEndTime: taskTime(t0 + endMs)}
	}
	e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: t0, RunBeginTime: t0, RunEndTime: t0 + 5000,
		Tasks: []explorer.Task{task("Query", explorer.StatusSuccess, 0, 1000), task("BFS", explorer.StatusSuccess, 1000, 5000)}})
	e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusFailed, CreateTime: t0 + 1, RunBeginTime: t0 + 1, RunEndTime: t0 + 30_000,
		Tasks: []explorer.Task{task("Query", explorer.StatusSuccess, 0, 500),
			{Name: "BFS", Status: explorer.StatusFailed, RunBeginTime: "yesterday", RunEndTime: taskTime(t0 + 30_000)},
			{Name: "WCC", Status: explorer.StatusPreparing}}})
	e.fake.AddJob(explorer.Job{WorkflowID: "2", WorkflowName: "pr", Status: explorer.StatusInterrupted, CreateTime: t0 + 2, RunBeginTime: t0 + 2, RunEndTime: t0 + 90_000,
		Tasks: []explorer.Task{task("", explorer.StatusSuccess, 0, 20_000), task("PageRank", explorer.StatusInterrupted, 20_000, 90_000)}})
	e.fake.AddJob(explorer.Job{WorkflowID: "2", WorkflowName: "pr", Status: explorer.StatusSuccess, CreateTime: t0 + 3, RunBeginTime: t0 + 3, RunEndTime: t0 + 60_000,
		Tasks: []explorer.Task{task("PageRank", explorer.StatusSuccess, 3, 60_000)}})
	running := e.fake.AddJob(explorer.Job{WorkflowID: "2", WorkflowName: "pr", Status: explorer.StatusRunning, CreateTime: t0 + 3, RunBeginTime: t0 + 3,
		Tasks: []explorer.Task{task("PageRank", explorer.StatusSuccess, 3, 3003)}})
	e.mustSync(t)
	assertGolden(t, "tasks_first_sync.prom", []byte(jobMetrics(t, e.col))) // one of pr's jobs waits in the backlog

	e.fake.UpdateJob(running.ID, func(j *explorer.Job) { j.Status, j.RunEndTime = explorer.StatusSuccess, t0+3003 })
	e.mustSync(t) // the waiting job; the one just finished waits
	e.mustSync(t)
	assertGolden(t, "tasks.prom", []byte(jobMetrics(t, e.col)))
}

// TestBadTaskData: null tasks, null entries, missing names, malformed
// times and thousands of tasks in one job are counted as documented.
func TestBadTaskData(t *testing.T) {
	key := workflowKey{"1", "bfs"}
	decode := func(t *testing.T, body string) explorer.Job {
		t.Helper()
		var j explorer.Job
		if err := json.Unmarshal([]byte(body), &j); err != nil {
			t.Fatal(err)
		}
		return j
	}
	t.Run("null tasks, null entries, no name, malformed and reversed times", func(t *testing.T) {
		ts := newTaskState([]float64{1, 10})
		ts.count(key, decode(t, `{"tasks": null}`).Tasks)
		ts.count(key, decode(t, `{"tasks": [null,
			{"status": 2, "runBeginTime": "2024-01-01T10:00:00+08:00", "runEndTime": "2024-01-01T10:00:02+08:00"},
			{"name": "BFS", "status": 3, "runBeginTime": "2024-01-01 10:00:00", "runEndTime": "2024-01-01T10:00:02+08:00"},
			{"name": "BFS", "status": 3, "runBeginTime": "2024-01-01T10:00:05+08:00", "runEndTime": "2024-01-01T10:00:02+08:00"},
			{"name": "BFS", "status": 4, "runBeginTime": "", "runEndTime": ""},
			{"name": "LPA", "status": 1, "runBeginTime": "2024-01-01T10:00:00Z"},
			{"name": "WCC", "status": 77}
		]}`).Tasks)
		s := newState(nil, nil)
		s.tasks = ts
		s.stats(key)
		assertGolden(t, "tasks_bad_data.prom", mustText(t, s))
		if ts.invalidTimes != 1 {
			t.Errorf("invalid times counted: %d, want 1", ts.invalidTimes)
		}
	})
	t.Run("a detail that says tasks null counts none and is not asked again", func(t *testing.T) {
		e := newTestEnv(t, withTasks(10))
		e.fake.SetQuirks(explorertest.Quirks{NoGeneratedTasks: true, TasksNull: true})
		e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: t0, RunBeginTime: t0, RunEndTime: t0 + 1000})
		e.mustSync(t)
		e.mustSync(t)
		if d := e.fake.Stats().Details; d != 1 || len(e.col.state.tasks.backlog) != 0 || len(e.col.state.tasks.series) != 0 {
			t.Errorf("%d detail requests, backlog %d, task series of %d workflows; want 1, 0, 0", d, len(e.col.state.tasks.backlog), len(e.col.state.tasks.series))
		}
	})
	t.Run("thousands of tasks in one job, of as many names", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(`{"tasks": [`)
		const n = 5000
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name": "task_%d", "status": 2, "runBeginTime": "2024-01-01T10:00:00Z", "runEndTime": "2024-01-01T10:00:01Z"}`, i)
		}
		b.WriteString(`]}`)
		ts := newTaskState([]float64{1, 10})
		ts.count(key, decode(t, b.String()).Tasks)
		names := ts.series[key]
		if len(names) != maxTaskNames+1 {
			t.Errorf("%d task series, want %d names and %q", len(names), maxTaskNames, otherTask)
		}
		total := uint64(0)
		for _, st := range names {
			total += st.finished[0]
		}
		if total != n || names[otherTask].finished[0] != n-maxTaskNames || names[otherTask].run[0].count != n-maxTaskNames {
			t.Errorf("counted %d tasks, %d of them as %q; want %d, %d", total, names[otherTask].finished[0], otherTask, n, n-maxTaskNames)
		}
	})
}

// detailGate fronts the fake: it counts detail requests and fails those
// fail says to, with HTTP 500.
type detailGate struct {
	fake    http.Handler
	details atomic.Int64
	fail    func(n int64) bool
}

func (g *detailGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, explorer.JobsPath+"/") {
		if n := g.details.Add(1); g.fail != nil && g.fail(n) {
			http.Error(w, `{"code":50004000,"message":"ErrInternalServer"}`, http.StatusInternalServerError)
			return
		}
	}
	g.fake.ServeHTTP(w, r)
}

// TestTaskBudget: a burst of 500 finishing jobs, their tasks only in the
// detail, is fully counted over successive syncs, each within the budget,
// and never twice: not when a detail request fails (retried later), not
// when a listing fails after the burst was seen (the sync applies nothing).
func TestTaskBudget(t *testing.T) {
	const budget, burst = 50, 500
	e := newTestEnv(t, withTasks(budget), func(o *Options) { o.PageSize = 100 })
	e.fake.SetNow(func() time.Time { return time.UnixMilli(t0 + time.Hour.Milliseconds()) })
	gate := &detailGate{fake: e.fake}
	srv := httptest.NewServer(gate)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.col = e.newCollector(t)
	e.mustSync(t)
	var ids []int64
	for i := range burst {
		ids = append(ids, e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusRunning,
			CreateTime: t0 + int64(i), RunBeginTime: t0 + int64(i)}).ID)
	}
	e.mustSync(t)
	for _, id := range ids {
		e.fake.UpdateJob(id, func(j *explorer.Job) {
			j.Status, j.RunEndTime = explorer.StatusSuccess+int(id%3), j.RunBeginTime+id*1000
		})
	}
	// The first listing after the burst fails on its second page.
	var lists atomic.Int64
	e.fake.SetQuirks(explorertest.Quirks{OnList: func(explorer.Filter, int) {
		if lists.Add(1) == 2 {
			e.fake.SetQuirks(explorertest.Quirks{HTTPStatus: 502})
		}
	}})
	if e.sync(t) {
		t.Fatal("the sync succeeded with a failing listing")
	}
	e.fake.SetQuirks(explorertest.Quirks{})
	gate.fail = func(n int64) bool { return n%37 == 0 } // some detail requests fail
	syncs := 0
	for {
		before := gate.details.Load()
		e.mustSync(t)
		syncs++
		if n := gate.details.Load() - before; n > budget {
			t.Fatalf("sync %d made %d detail requests, budget %d", syncs, n, budget)
		}
		if len(e.col.state.tasks.backlog) == 0 {
			break
		}
		if syncs > 2*burst/budget {
			t.Fatalf("backlog of %d jobs left after %d syncs", len(e.col.state.tasks.backlog), syncs)
		}
	}
	got := jobMetrics(t, e.col)
	gate.fail = nil
	if want := e.fresh(t); got != want {
		t.Errorf("after %d syncs, values differ from a fresh exporter's:\n%s", syncs, diffSamples(t, got, want))
	}
	if !strings.Contains(got, "nebula_explorer_task_backlog_jobs 0") {
		t.Errorf("backlog not empty:\n%s", got)
	}
}

// TestTaskBacklogBounds: the backlog gives up its oldest job beyond
// maxTaskBacklog, and a job whose detail keeps failing after
// maxTaskAttempts syncs, each counted by reason; a failing detail never
// fails the sync.
func TestTaskBacklogBounds(t *testing.T) {
	t.Run("a full backlog gives up its oldest job", func(t *testing.T) {
		ts := newTaskState(nil)
		for id := int64(1); id <= maxTaskBacklog+5; id++ {
			ts.jobFinished(explorer.Job{ID: id, Status: explorer.StatusSuccess, RunEndTime: t0}, workflowKey{"1", "bfs"})
		}
		if len(ts.backlog) != maxTaskBacklog || ts.backlog[0].id != 6 || ts.skipped[skipBacklogFull] != 5 {
			t.Errorf("backlog %d jobs from id %d, %d given up; want %d from 6, 5", len(ts.backlog), ts.backlog[0].id, ts.skipped[skipBacklogFull], maxTaskBacklog)
		}
	})
	t.Run("a detail that keeps failing is given up after its attempts", func(t *testing.T) {
		e := newTestEnv(t, withTasks(10))
		gate := &detailGate{fake: e.fake, fail: func(int64) bool { return true }}
		srv := httptest.NewServer(gate)
		t.Cleanup(srv.Close)
		e.url = srv.URL
		e.col = e.newCollector(t)
		e.fake.AddJob(explorer.Job{WorkflowID: "1", WorkflowName: "bfs", Status: explorer.StatusSuccess, CreateTime: t0, RunBeginTime: t0, RunEndTime: t0 + 1000})
		for range maxTaskAttempts {
			e.mustSync(t) // the sync itself succeeds
		}
		ts := e.col.state.tasks
		if len(ts.backlog) != 0 || ts.skipped[skipDetailFailed] != 1 || gate.details.Load() != maxTaskAttempts {
			t.Errorf("backlog %d, given up %d, %d detail requests; want 0, 1, %d", len(ts.backlog), ts.skipped[skipDetailFailed], gate.details.Load(), maxTaskAttempts)
		}
		if !strings.Contains(e.logs.String(), "retrying at a later sync") {
			t.Errorf("no warning logged:\n%s", e.logs)
		}
	})
}

// TestTasksDisabled: tasks.enabled false fetches no detail and exports no
// task metric.
func TestTasksDisabled(t *testing.T) {
	e := newTestEnv(t, withTasks(10), func(o *Options) { o.Tasks.Enabled = false })
	e.fake.SetQuirks(explorertest.Quirks{TasksNull: true})
	addHistory(e.fake, 5, t0)
	e.mustSync(t)
	e.mustSync(t)
	if d, text := e.fake.Stats().Details, jobMetrics(t, e.col); d != 0 || strings.Contains(text, "task") {
		t.Errorf("%d detail requests; task metrics:\n%s", d, text)
	}
}
