package collector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"

	"github.com/nebula-contrib/nebula_explorer_exporter/internal/explorer"
)

// Bounds of the task state (see README "Task metrics").
const (
	// maxTaskBacklog is how many finished jobs may wait for their detail;
	// beyond it the oldest waiting job is given up (skipped, backlog_full).
	maxTaskBacklog = 10_000
	// maxTaskNames is how many task names a workflow gets series for; the
	// tasks of any further name count under otherTask.
	maxTaskNames = 100
	// maxTaskAttempts is how many failed detail requests a job gets before
	// it is given up (skipped, detail_failed).
	maxTaskAttempts = 3

	otherTask   = "other"   // the task label beyond maxTaskNames names
	unnamedTask = "unknown" // the task label of a task without a name
)

// Why a finished job's tasks were given up, the reason label of task_jobs_skipped_total.
const (
	skipBacklogFull = iota
	skipDetailFailed
)

var skipReasons = [...]string{skipBacklogFull: "backlog_full", skipDetailFailed: "detail_failed"}

// taskStats aggregates the tasks of one name in one workflow.
type taskStats struct {
	finished [3]uint64 // by the task's terminal status
	run      [3]histogram
	cut      bool // its task label was cut to limits.maxLabelLength
}

// pendingJob is a finished job whose tasks wait for its detail (GET jobs/<id>).
type pendingJob struct {
	id       int64
	key      workflowKey // its workflow when it finished
	attempts int         // failed detail requests so far
}

// taskState is the task metrics: counters only, so it is never recomputed
// but carried from state to state, a full resync included. O(workflows ×
// task names + backlog).
type taskState struct {
	buckets      []float64
	series       map[workflowKey]map[string]*taskStats
	backlog      []pendingJob // oldest first
	invalidTimes uint64       // tasks whose times are not RFC 3339: counted, not observed
	skipped      [len(skipReasons)]uint64

	// Which newly terminal jobs need their tasks counted, for the sync under
	// way only (never cloned): on a first sync, those that ended at or
	// after since (ms); on a full resync, those the old state base had not
	// handled yet.
	since int64
	base  *state

	maxLabelLength int // task names are cut like workflow names (see cutLabel)
}

func newTaskState(buckets []float64) *taskState {
	return &taskState{buckets: buckets, series: map[workflowKey]map[string]*taskStats{}}
}

func (t *taskState) clone() *taskState {
	if t == nil {
		return nil
	}
	c := *t
	c.since, c.base = 0, nil
	c.series = make(map[workflowKey]map[string]*taskStats, len(t.series))
	for k, names := range t.series {
		cn := make(map[string]*taskStats, len(names))
		for name, st := range names {
			cst := *st
			for i := range cst.run {
				cst.run[i] = st.run[i].clone()
			}
			cn[name] = &cst
		}
		c.series[k] = cn
	}
	c.backlog = append([]pendingJob(nil), t.backlog...)
	return &c
}

// jobFinished is called once for each job that the state counts as terminal.
func (t *taskState) jobFinished(j explorer.Job, key workflowKey) {
	if t.base != nil && t.base.handled(j) || refOf(j).at < t.since {
		return
	}
	if j.Tasks != nil { // the listing carries them
		t.count(key, j.Tasks)
		return
	}
	if len(t.backlog) >= maxTaskBacklog {
		t.backlog = t.backlog[1:]
		t.skipped[skipBacklogFull]++
	}
	t.backlog = append(t.backlog, pendingJob{id: j.ID, key: key})
}

// handled reports whether s, the state before a full resync, has already
// counted j as terminal (and so queued or counted its tasks): it is not
// unfinished in s, and s has it in its dedup set or older than its floor.
func (s *state) handled(j explorer.Job) bool {
	_, unfinished := s.unfinished[j.ID]
	_, counted := s.finishedSince[j.ID]
	return !unfinished && (counted || j.CreateTime < s.floor)
}

// count folds in the tasks of a finished job: each task in a terminal
// status counts once; its run time is observed when valid, like a job's.
func (t *taskState) count(key workflowKey, tasks []explorer.Task) {
	for _, task := range tasks {
		if !explorer.IsTerminal(task.Status) {
			continue // never ran, or undocumented
		}
		st, i := t.stats(key, task.Name), terminalIndex(task.Status)
		st.finished[i]++
		begin, end, err := task.RunTimes()
		if err != nil {
			t.invalidTimes++
			continue
		}
		if begin > 0 && end >= begin {
			st.run[i].observe(end - begin)
		}
	}
}

func (t *taskState) stats(key workflowKey, name string) *taskStats {
	names := t.series[key]
	if names == nil {
		names = map[string]*taskStats{}
		t.series[key] = names
	}
	name, cut := cutLabel(cmp.Or(name, unnamedTask), t.maxLabelLength)
	if _, ok := names[name]; !ok && len(names) >= maxTaskNames {
		name, cut = otherTask, false
	}
	st, ok := names[name]
	if !ok {
		st = &taskStats{}
		for i := range st.run {
			st.run[i] = newHistogram(t.buckets)
		}
		names[name] = st
	}
	st.cut = st.cut || cut
	return st
}

// keepWorkflowsOf drops the task series of workflows s no longer has (all
// their jobs deleted, or renamed), as a full resync drops their job series.
func (t *taskState) keepWorkflowsOf(s *state) {
	maps.DeleteFunc(t.series, func(k workflowKey, _ map[string]*taskStats) bool { return s.workflows[k] == nil })
}

// taskSeries is one (workflow, task) pair of the task metrics.
type taskSeries struct {
	key   workflowKey
	name  string
	stats *taskStats
}

// sorted returns the task series in label order (task, workflow, workflow_id).
func (t *taskState) sorted() []taskSeries {
	if t == nil {
		return nil
	}
	var out []taskSeries
	for k, names := range t.series {
		for name, st := range names {
			out = append(out, taskSeries{k, name, st})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.name != b.name {
			return a.name < b.name
		}
		if a.key.name != b.key.name {
			return a.key.name < b.key.name
		}
		return a.key.id < b.key.id
	})
	return out
}

// errTaskDetail is a failed detail request: the job is retried at a later
// sync, and the sync goes on.
var errTaskDetail = errors.New("fetching a finished job's tasks")

// fetchTasks gets the detail of up to budget waiting jobs, oldest first, and
// counts their tasks. A job Explorer no longer has is done with. Another
// failure stops fetching for this sync: the job goes to the back of the
// backlog (given up after maxTaskAttempts) and an errTaskDetail is
// returned; the sync itself goes on. Only the end of the sync's time fails it.
func (y *syncer) fetchTasks(ctx context.Context, s *state, budget int) error {
	t := s.tasks
	for n := 0; n < budget && len(t.backlog) > 0; n++ {
		p := t.backlog[0]
		t.backlog = t.backlog[1:]
		s.changed = true
		y.count(1)
		j, err := y.client.Job(ctx, p.id)
		y.touch() // progress, for the stall detection (schedule.go)
		var apiErr *explorer.Error
		switch {
		case err == nil:
			t.count(p.key, j.Tasks)
		case errors.As(err, &apiErr) && apiErr.IsNotFound():
			// deleted meanwhile: nothing to count
		case ctx.Err() != nil:
			return err
		default:
			if p.attempts++; p.attempts < maxTaskAttempts {
				t.backlog = append(t.backlog, p)
			} else {
				t.skipped[skipDetailFailed]++
			}
			return fmt.Errorf("%w %d (attempt %d of %d): %w", errTaskDetail, p.id, p.attempts, maxTaskAttempts, err)
		}
	}
	return nil
}
