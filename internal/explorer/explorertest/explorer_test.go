package explorertest

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// checkOrder fails the test unless e's jobs are in strict (CreateTime, ID)
// order and each can be found by its ID.
func checkOrder(t *testing.T, e *Explorer) {
	t.Helper()
	jobs := e.Jobs()
	for i := 1; i < len(jobs); i++ {
		if compareJobs(&jobs[i-1], &jobs[i]) >= 0 {
			t.Fatalf("jobs %d and %d out of order: %+v, %+v", i-1, i, jobs[i-1], jobs[i])
		}
	}
	for _, j := range jobs {
		if got, ok := e.Job(j.ID); !ok || !reflect.DeepEqual(got, j) {
			t.Fatalf("Job(%d) = %+v, %v; want %+v", j.ID, got, ok, j)
		}
	}
}

func TestStore(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	newExplorer := func() *Explorer {
		e := New()
		e.SetNow(func() time.Time { return now })
		return e
	}
	t.Run("AddJob assigns the next id and now as CreateTime", func(t *testing.T) {
		e := newExplorer()
		a := e.AddJob(explorer.Job{Name: "a"})
		b := e.AddJob(explorer.Job{ID: 10, Name: "b", CreateTime: 5})
		c := e.AddJob(explorer.Job{Name: "c"})
		if a.ID != 1 || a.CreateTime != now.UnixMilli() || b.ID != 10 || b.CreateTime != 5 || c.ID != 11 {
			t.Errorf("stored %+v %+v %+v", a, b, c)
		}
		if got := ids(e.Jobs()); !slices.Equal(got, []int64{10, 1, 11}) {
			t.Errorf("order %v", got)
		}
		checkOrder(t, e)
	})
	t.Run("a late-visible job is inserted at its place", func(t *testing.T) {
		e := newExplorer()
		for _, ct := range []int64{1000, 2000, 3000} {
			e.AddJob(explorer.Job{CreateTime: ct})
		}
		late := e.AddJob(explorer.Job{CreateTime: 1500})
		if got := ids(e.Jobs()); late.ID != 4 || !slices.Equal(got, []int64{1, 4, 2, 3}) {
			t.Errorf("order %v", got)
		}
		checkOrder(t, e)
		e.AddJob(explorer.Job{CreateTime: 4000})
		if !e.DeleteJob(4) {
			t.Fatal("DeleteJob(4) = false")
		}
		checkOrder(t, e)
		if e.DeleteJob(4) {
			t.Error("DeleteJob of a deleted job = true")
		}
		if j := e.AddJob(explorer.Job{}); j.ID != 6 {
			t.Errorf("an id was reused: %d", j.ID)
		}
	})
	t.Run("AddJob panics on a duplicate id", func(t *testing.T) {
		e := newExplorer()
		e.AddJob(explorer.Job{ID: 3})
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
		}()
		e.AddJob(explorer.Job{ID: 3, CreateTime: 1})
	})
	t.Run("AddJobs sorts jobs that come out of order", func(t *testing.T) {
		e := newExplorer()
		e.AddJob(explorer.Job{CreateTime: 2500})
		e.AddJobs([]explorer.Job{{CreateTime: 3000}, {CreateTime: 1000}, {ID: 20, CreateTime: 2000}, {}})
		if got := ids(e.Jobs()); !slices.Equal(got, []int64{3, 20, 1, 2, 21}) {
			t.Errorf("order %v", got)
		}
		checkOrder(t, e)
	})
	t.Run("AddJobs panics on a duplicate id", func(t *testing.T) {
		e := newExplorer()
		e.AddJob(explorer.Job{ID: 5})
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
			if e.Len() != 1 {
				t.Errorf("%d jobs after the failed AddJobs", e.Len())
			}
		}()
		e.AddJobs([]explorer.Job{{ID: 1}, {ID: 5}})
	})
	t.Run("UpdateJob changes a job and moves it when CreateTime changes", func(t *testing.T) {
		e := newExplorer()
		for _, ct := range []int64{1000, 2000, 3000} {
			e.AddJob(explorer.Job{CreateTime: ct})
		}
		if !e.UpdateJob(2, func(j *explorer.Job) { j.Status = 7; j.WorkflowName = "x" }) {
			t.Fatal("UpdateJob(2) = false")
		}
		if j, _ := e.Job(2); j.Status != 7 || j.WorkflowName != "x" {
			t.Errorf("job %+v", j)
		}
		e.UpdateJob(3, func(j *explorer.Job) { j.CreateTime = 500 })
		if got := ids(e.Jobs()); !slices.Equal(got, []int64{3, 1, 2}) {
			t.Errorf("order %v", got)
		}
		checkOrder(t, e)
		if e.UpdateJob(99, func(*explorer.Job) {}) {
			t.Error("UpdateJob of an unknown job = true")
		}
		defer func() {
			if recover() == nil {
				t.Error("changing the ID did not panic")
			}
		}()
		e.UpdateJob(1, func(j *explorer.Job) { j.ID = 50 })
	})
	t.Run("DeleteJobsFunc removes the jobs it is told to, in one pass", func(t *testing.T) {
		e := newExplorer()
		e.AddJobs(Workload{Workflows: 3, Seed: 1, Now: now}.History(1000))
		if n := e.DeleteJobsFunc(func(j *explorer.Job) bool { return j.ID%2 == 0 }); n != 500 {
			t.Errorf("deleted %d, want 500", n)
		}
		for _, j := range e.Jobs() {
			if j.ID%2 == 0 {
				t.Fatalf("job %d left", j.ID)
			}
		}
		checkOrder(t, e)
	})
	t.Run("RenameWorkflow renames every job of the workflow", func(t *testing.T) {
		e := newExplorer()
		e.AddJobs([]explorer.Job{{WorkflowID: "1", WorkflowName: "a"}, {WorkflowID: "2", WorkflowName: "b"}, {WorkflowID: "1", WorkflowName: "a"}})
		if n := e.RenameWorkflow("1", "新名字"); n != 2 {
			t.Errorf("renamed %d", n)
		}
		for _, j := range e.Jobs() {
			if (j.WorkflowID == "1") != (j.WorkflowName == "新名字") {
				t.Errorf("job %+v", j)
			}
		}
	})
	t.Run("Jobs returns a copy", func(t *testing.T) {
		e := newExplorer()
		e.AddJob(explorer.Job{Name: "a"})
		e.Jobs()[0].Name = "changed"
		if j, _ := e.Job(1); j.Name != "a" {
			t.Errorf("the store changed: %+v", j)
		}
	})
	t.Run("many late inserts and deletes keep the order and the index", func(t *testing.T) {
		e := newExplorer()
		w := Workload{Workflows: 3, Seed: 9, Now: now}
		e.AddJobs(w.History(300))
		for i := range 50 {
			e.AddJob(explorer.Job{CreateTime: now.UnixMilli() - int64(i)*977_000})
			e.DeleteJob(int64(7*i + 1))
			e.UpdateJob(int64(3*i+2), func(j *explorer.Job) { j.CreateTime -= 3_600_000 })
		}
		checkOrder(t, e)
		if e.Len() != 300 {
			t.Errorf("%d jobs", e.Len())
		}
	})
}
