package explorertest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

var testNow = time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)

func TestWorkflowList(t *testing.T) {
	tests := []struct {
		name string
		n    int
	}{
		{"one workflow", 1},
		{"the default dozen", 12},
		{"more workflows than base names", 40},
	}
	for _, tt := range tests {
		t.Run(tt.name+" have unique digit ids and unique names", func(t *testing.T) {
			wfs := Workload{Workflows: tt.n, Seed: 1}.WorkflowList()
			if len(wfs) != tt.n {
				t.Fatalf("%d workflows", len(wfs))
			}
			names, wids := map[string]bool{}, map[string]bool{}
			unicode := false
			for _, w := range wfs {
				if _, err := strconv.ParseUint(w.ID, 10, 64); err != nil || len(w.ID) != 10 || wids[w.ID] {
					t.Errorf("id %q", w.ID)
				}
				if w.Name == "" || names[w.Name] {
					t.Errorf("name %q", w.Name)
				}
				names[w.Name], wids[w.ID] = true, true
				unicode = unicode || utf8.RuneCountInString(w.Name) != len(w.Name)
			}
			if tt.n >= 4 && !unicode {
				t.Errorf("no Unicode name in %v", wfs)
			}
		})
	}
	t.Run("another seed gives other ids but the same names", func(t *testing.T) {
		a, b := Workload{Workflows: 5, Seed: 1}.WorkflowList(), Workload{Workflows: 5, Seed: 2}.WorkflowList()
		for i := range a {
			if a[i].Name != b[i].Name || a[i].ID == b[i].ID {
				t.Errorf("%v vs %v", a[i], b[i])
			}
		}
	})
}

func TestHistory(t *testing.T) {
	w := Workload{Workflows: 12, Seed: 42, Now: testNow}
	const n = 10000
	jobs := w.History(n)

	t.Run("the same seed gives the same history", func(t *testing.T) {
		if again := w.History(n); !reflect.DeepEqual(again, jobs) {
			t.Error("histories differ")
		}
	})
	t.Run("another seed gives another history", func(t *testing.T) {
		other := Workload{Workflows: 12, Seed: 43, Now: testNow}.History(n)
		if reflect.DeepEqual(other, jobs) {
			t.Error("histories are equal")
		}
	})
	t.Run("every job's generated tasks agree with it, failed ones included", func(t *testing.T) {
		failedTasks := 0
		for _, j := range jobs {
			tasks := tasksFor(&j, testNow)
			checkTasks(t, j, tasks, testNow)
			if want, _ := json.Marshal(tasks); string(appendPlannedTasks(nil, &j, testNow)) != string(want) {
				t.Fatalf("job %d: the listing writes\n%s\nthe detail\n%s", j.ID, appendPlannedTasks(nil, &j, testNow), want)
			}
			for _, task := range tasks {
				if task.Status == explorer.StatusFailed {
					failedTasks++
				}
			}
		}
		if failedTasks < n/20 {
			t.Errorf("%d failed tasks in %d jobs", failedTasks, n)
		}
	})
	t.Run("ids run 1..n in ascending CreateTime ending shortly before Now", func(t *testing.T) {
		for i, j := range jobs {
			if j.ID != int64(i+1) || (i > 0 && j.CreateTime <= jobs[i-1].CreateTime) {
				t.Fatalf("job %d: %+v after %+v", i, j, jobs[i-1])
			}
		}
		last := time.UnixMilli(jobs[n-1].CreateTime)
		if !last.Before(testNow) || testNow.Sub(last) > time.Minute {
			t.Errorf("the newest job was created at %v, Now is %v", last, testNow)
		}
	})
	t.Run("jobs are consistent and believable", func(t *testing.T) {
		wfs := map[string]string{}
		for _, wf := range w.WorkflowList() {
			wfs[wf.ID] = wf.Name
		}
		nowMS := testNow.UnixMilli()
		for _, j := range jobs {
			if wfs[j.WorkflowID] != j.WorkflowName || len(j.Name) != len(j.WorkflowName)+15 || j.Name[:len(j.WorkflowName)] != j.WorkflowName {
				t.Fatalf("names of %+v", j)
			}
			queue, run := j.RunBeginTime-j.CreateTime, j.RunEndTime-j.RunBeginTime
			switch {
			case j.Status == explorer.StatusPreparing:
				if j.RunBeginTime != 0 || j.RunEndTime != 0 {
					t.Fatalf("preparing %+v", j)
				}
			case j.Status == explorer.StatusRunning:
				if queue < 0 || queue > 60_000 || j.RunBeginTime > nowMS || j.RunEndTime != 0 {
					t.Fatalf("running %+v", j)
				}
			case explorer.IsTerminal(j.Status):
				if queue < 0 || queue > 60_000 || run < 1000 || run > 2*3600_000 || j.RunEndTime > nowMS {
					t.Fatalf("terminal %+v: queue %d ms, run %d ms", j, queue, run)
				}
			default:
				t.Fatalf("status %d", j.Status)
			}
		}
	})
	t.Run("the status mix is about 85% success, 10% failed, 5% interrupted, the newest few not finished", func(t *testing.T) {
		count := map[int]int{}
		for i, j := range jobs {
			count[j.Status]++
			if !explorer.IsTerminal(j.Status) && i < n-500 {
				t.Errorf("job %d of %d is still %d", i, n, j.Status)
			}
		}
		within := func(status int, lo, hi float64) {
			if f := float64(count[status]) / n; f < lo || f > hi {
				t.Errorf("status %d: %.3f of jobs, want %.2f-%.2f", status, f, lo, hi)
			}
		}
		within(explorer.StatusSuccess, 0.82, 0.88)
		within(explorer.StatusFailed, 0.08, 0.12)
		within(explorer.StatusInterrupted, 0.035, 0.065)
		if open := count[0] + count[1]; open < 1 || open > 60 {
			t.Errorf("%d preparing or running jobs", open)
		}
	})
	t.Run("every workflow runs", func(t *testing.T) {
		per := map[string]int{}
		for _, j := range jobs {
			per[j.WorkflowID]++
		}
		if len(per) != 12 {
			t.Errorf("%d workflows ran", len(per))
		}
	})
	t.Run("a failing workflow's jobs all fail", func(t *testing.T) {
		fw := Workload{Workflows: 12, Seed: 42, Now: testNow, FailWorkflow: "bfs_social"}
		seen := 0
		for _, j := range fw.History(2000) {
			if j.WorkflowName == "bfs_social" && explorer.IsTerminal(j.Status) {
				seen++
				if j.Status != explorer.StatusFailed {
					t.Fatalf("job %+v did not fail", j)
				}
			}
		}
		if seen == 0 {
			t.Error("no finished bfs_social job")
		}
	})
}

// simulate runs ticks Steps of w on a fresh Explorer loaded with w's history.
func simulate(w *Workload, history, ticks int) *Explorer {
	e := New()
	e.AddJobs(w.History(history))
	for i := range ticks {
		w.Step(e, w.Now.Add(time.Duration(i+1)*10*time.Second))
	}
	return e
}

func TestStep(t *testing.T) {
	t.Run("the same seed and ticks give the same jobs", func(t *testing.T) {
		a := simulate(&Workload{Workflows: 6, Seed: 5, Now: testNow}, 200, 300)
		b := simulate(&Workload{Workflows: 6, Seed: 5, Now: testNow}, 200, 300)
		if !reflect.DeepEqual(a.Jobs(), b.Jobs()) {
			t.Error("the simulations differ")
		}
	})
	t.Run("ticks create jobs and carry them through to a terminal status", func(t *testing.T) {
		w := &Workload{Workflows: 6, Seed: 5, Now: testNow}
		e := New()
		e.AddJobs(w.History(50))
		prev := map[int64]explorer.Job{}
		for _, j := range e.Jobs() {
			prev[j.ID] = j
		}
		for i := range 1000 {
			now := testNow.Add(time.Duration(i+1) * 10 * time.Second)
			w.Step(e, now)
			for _, j := range e.Jobs() {
				p, ok := prev[j.ID]
				switch {
				case !ok:
					if j.Status != explorer.StatusPreparing || j.CreateTime != now.UnixMilli() || j.RunBeginTime != 0 {
						t.Fatalf("new job %+v", j)
					}
				case p.Status == j.Status:
					if !reflect.DeepEqual(p, j) {
						t.Fatalf("job changed without a status change: %+v -> %+v", p, j)
					}
				case p.Status == explorer.StatusPreparing:
					if j.Status != explorer.StatusRunning || j.RunBeginTime != now.UnixMilli() {
						t.Fatalf("start %+v -> %+v", p, j)
					}
				case p.Status == explorer.StatusRunning:
					if !explorer.IsTerminal(j.Status) || j.RunEndTime != now.UnixMilli() || j.RunBeginTime != p.RunBeginTime {
						t.Fatalf("finish %+v -> %+v", p, j)
					}
				default:
					t.Fatalf("%+v -> %+v", p, j)
				}
				prev[j.ID] = j
			}
		}
		count := map[int]int{}
		for _, j := range prev {
			count[j.Status]++
		}
		if len(prev) < 250 || count[2] < len(prev)*7/10 || count[3] == 0 || count[4] == 0 {
			t.Errorf("%d jobs, statuses %v", len(prev), count)
		}
	})
	t.Run("a stopping job ends interrupted, an undocumented status stays", func(t *testing.T) {
		w := &Workload{Workflows: 2, Seed: 1, Now: testNow}
		e := New()
		e.AddJob(explorer.Job{WorkflowID: "x", Status: explorer.StatusStopping, CreateTime: 1, RunBeginTime: 2})
		e.AddJob(explorer.Job{WorkflowID: "x", Status: 7, CreateTime: 3})
		w.Step(e, testNow)
		if j, _ := e.Job(1); j.Status != explorer.StatusInterrupted || j.RunEndTime != testNow.UnixMilli() {
			t.Errorf("stopping job %+v", j)
		}
		if j, _ := e.Job(2); j.Status != 7 {
			t.Errorf("odd job %+v", j)
		}
	})
	t.Run("new jobs of a renamed workflow carry the new name", func(t *testing.T) {
		w := &Workload{Workflows: 1, Seed: 1, Now: testNow}
		e := New()
		e.AddJobs(w.History(3))
		e.RenameWorkflow(w.WorkflowList()[0].ID, "renamed")
		for i := 0; e.Len() == 3 && i < 100; i++ {
			w.Step(e, testNow.Add(time.Duration(i)*time.Second))
		}
		if jobs := e.Jobs(); len(jobs) == 3 || jobs[len(jobs)-1].WorkflowName != "renamed" {
			t.Errorf("newest job %+v", jobs[len(jobs)-1])
		}
	})
}

// bigExplorer is a million-job history, built once for the benchmarks.
var bigExplorer = sync.OnceValue(func() *Explorer {
	e := New()
	e.AddJobs(Workload{Workflows: 12, Seed: 1, Now: testNow}.History(1_000_000))
	return e
})

// discard is a ResponseWriter that only counts bytes.
type discard struct {
	h http.Header
	n int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkListPage serves 1000-item pages from a 1,000,000-job history,
// walking through the first 1000 pages as a full sync would.
func BenchmarkListPage(b *testing.B) {
	e := bigExplorer()
	token := func() string {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", explorer.ConnectPath, strings.NewReader(connectBody))
		req.Header.Set("Authorization", bearerJSON("root", "nebula"))
		e.ServeHTTP(rec, req)
		for _, c := range rec.Result().Cookies() {
			return c.Value
		}
		b.Fatal("no token")
		return ""
	}()
	cookie := &http.Cookie{Name: explorer.TokenCookie, Value: token}
	for _, order := range []string{"desc", "asc", "asc with tasks"} {
		b.Run("handler "+order, func(b *testing.B) {
			if order == "asc with tasks" {
				e.SetQuirks(Quirks{TasksInListing: true})
				defer e.SetQuirks(Quirks{})
				order = "asc"
			}
			reqs := make([]*http.Request, 1000)
			for i := range reqs {
				reqs[i] = httptest.NewRequest("GET", listPath(explorer.JobsPath, explorer.Filter{OrderByCreateTime: order}, i+1, 1000), nil)
				reqs[i].AddCookie(cookie)
			}
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				e.ServeHTTP(w, reqs[i%len(reqs)])
			}
			b.SetBytes(int64(w.n / max(1, b.N)))
		})
	}
	b.Run("http desc", func(b *testing.B) {
		srv := NewServer(e)
		defer srv.Close()
		client := srv.Client()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			req, _ := http.NewRequest("GET", srv.URL+listPath(explorer.JobsPath, explorer.Filter{}, i%1000+1, 1000), nil)
			req.AddCookie(cookie)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkHistory generates a million jobs.
func BenchmarkHistory(b *testing.B) {
	w := Workload{Workflows: 12, Seed: 1, Now: testNow}
	b.ReportAllocs()
	for b.Loop() {
		w.History(1_000_000)
	}
}

func TestAppendTaskTime(t *testing.T) {
	for _, ms := range []int64{1657593215000, 1657593215500, 1657593215120, 1657593215001, -1, -1500, 1, 253402300800000, -62135596800001} {
		want := time.UnixMilli(ms).In(cst).Format("2006-01-02T15:04:05.999Z07:00")
		if got := string(appendTaskTime(nil, ms)); got != want {
			t.Errorf("%d: %s, want %s", ms, got, want)
		}
	}
}
